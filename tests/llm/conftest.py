"""A tiny tokenizer, an untrained tiny Llama and a mini-TOFU folder, shared by the LLM tests."""

import pytest

from simnpo.llm.mini_tofu import MiniTofuConfig, generate, write_mini_tofu
from simnpo.llm.models import TinyLlamaConfig, load_tokenizer, quiet_hugging_face, tiny_llama, train_tokenizer

quiet_hugging_face()


@pytest.fixture(scope="session")
def tofu_folder(tmp_path_factory):
    return write_mini_tofu(MiniTofuConfig(), tmp_path_factory.mktemp("tofu"))


@pytest.fixture(scope="session")
def tokenizer(tmp_path_factory):
    rows = generate(MiniTofuConfig())
    texts = [f"[INST] {r['question']} [/INST] {r['answer']}" for r in rows["full"] + rows["world_facts"]]
    texts += [a for r in rows["forget10_perturbed"] for a in [r["paraphrased_answer"], *r["perturbed_answer"]]]
    folder = tmp_path_factory.mktemp("tok")
    train_tokenizer(texts, folder, vocab_size=512)
    return load_tokenizer(folder)


@pytest.fixture(scope="session")
def tiny_model(tokenizer):
    return tiny_llama(
        TinyLlamaConfig(hidden_size=32, intermediate_size=64, layers=2, heads=2), tokenizer, seed=0
    ).eval()


@pytest.fixture(scope="session")
def trained_model(tiny_model, tokenizer, tofu_folder):
    """The tiny model fine-tuned on the first forget and retain items the trainer tests use, so that unlearning has
    something to undo."""
    import copy

    from simnpo.llm.finetune import FinetuneConfig, finetune
    from simnpo.llm.tofu_data import encode_qa, load_tofu

    rows = load_tofu(tofu_folder, "forget10")[:16] + load_tofu(tofu_folder, "retain90")[:32]
    data = encode_qa(tokenizer, [r["question"] for r in rows], [r["answer"] for r in rows])
    model = copy.deepcopy(tiny_model)
    finetune(model, data, FinetuneConfig(epochs=15, lr=1e-2, batch_size=16))
    return model.eval()


@pytest.fixture(scope="session")
def builtin_cache(tmp_path_factory):
    """One cache of the default-size built-in mini-TOFU for the slow tests (built by the first that needs it)."""
    return tmp_path_factory.mktemp("builtin-cache")


@pytest.fixture(scope="session")
def small_muse(tmp_path_factory):
    """A small mini-MUSE folder, its tokenizer (whitespace ends words, as the built-in one) and an untrained tiny
    Llama saved with it as a model folder: (data folder, model folder)."""
    from simnpo.llm.mini_muse import MiniMuseConfig, write_mini_muse
    from simnpo.llm.mini_muse import generate as generate_muse

    root = tmp_path_factory.mktemp("muse")
    config = MiniMuseConfig(forget=4, retain1=6, retain2=4, holdout=4, icl=3)
    data = write_mini_muse(config, root / "data")
    texts = [t for rows in generate_muse(config).values() for r in rows for t in r.values()]
    tokenizer = train_tokenizer(texts, root / "model", vocab_size=512, space_ends_word=True)
    model = tiny_llama(TinyLlamaConfig(hidden_size=32, intermediate_size=64, layers=2, heads=2), tokenizer, seed=0)
    model.save_pretrained(str(root / "model"))
    return data, root / "model"
