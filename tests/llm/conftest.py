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
