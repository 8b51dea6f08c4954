"""The built-in mini-MUSE on disk: data, tokenizer, and the fine-tuned target and retrain models, cached.

Everything lives in ``cache/mini-<hash>/`` where the hash covers every setting that determines it. As in MUSE, the
models are trained on raw text joined and cut into fully labelled chunks: the target on forget + retain1 +
retain2, the retrain model on filler + retain1 + retain2 (unrelated articles and quizzes in place of the forget
ones, ``simnpo/llm/muse/mini.py``), so both read as much and fit the retain set equally.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from simnpo.llm.data import chunk_texts
from simnpo.llm.finetune import BuiltinAssets, FinetuneConfig, build_tiny_model, builtin_assets
from simnpo.llm.models import TinyLlamaConfig, load_tokenizer, train_tokenizer
from simnpo.llm.muse.data import load_muse
from simnpo.llm.muse.mini import GENERATOR_REVISION, MiniMuseConfig, generate, write_mini_muse
from simnpo.runs import read_json

DEFAULT_CACHE = Path("runs/.cache/muse")
TRAINING_SETS = {
    "target": ("forget", "retain1", "retain2"),
    "retrain": ("filler", "retain1", "retain2"),
}
# KnowMem's 10-shot prompts and the 256-token training chunks need more positions than mini-TOFU's model has
MODEL = TinyLlamaConfig(max_positions=512)


@dataclass(frozen=True)
class BuiltinMuseConfig:
    """How the built-in models are made: chunk length and fine-tuning (the data and model have their own). Chunks
    of 256 tokens hold a whole 10-question quiz, so training covers the positions of KnowMem's ~150-token 10-shot
    prompts (128-token chunks never reached them); batches of 4 keep 1k tokens per step. 50 epochs with each
    question in 8 quizzes (``MiniMuseConfig.quiz_repeats``): the retrain and target models' KnowMem on D_r were 97.5
    and 93.5; at 100 epochs and 3 quizzes per question 69.5 and 77.0 (training loss 0.017 both), at 60 and 3, 80.5
    and 61.5."""

    chunk_tokens: int = 256
    finetune: FinetuneConfig = FinetuneConfig(epochs=50, batch_size=4)


MiniMuse = BuiltinAssets


def mini_muse(
    cache: Path = DEFAULT_CACHE,
    data_config: MiniMuseConfig = MiniMuseConfig(),
    model_config: TinyLlamaConfig = MODEL,
    build: BuiltinMuseConfig = BuiltinMuseConfig(),
) -> MiniMuse:
    """Data and tokenizer of mini-MUSE (made on first use); models come from ``ensure_model``."""

    def write(stage: Path) -> None:
        write_mini_muse(data_config, stage / "data")
        texts = [text for rows in generate(data_config).values() for row in rows for text in row.values()]
        train_tokenizer(texts, stage / "tokenizer", model_config.vocab_size, space_ends_word=True)

    configs = {"data": data_config, "model": model_config, "build": build, "generator": GENERATOR_REVISION}
    return builtin_assets(cache, configs, write)


def ensure_model(assets: MiniMuse, name: str, progress: Callable | None = None) -> Path:
    """Fine-tune the built-in ``target`` or ``retrain`` model unless it is cached; returns its folder. ``progress``
    (``progress(description, total) -> advance``) shows the fine-tuning."""
    if name not in TRAINING_SETS:
        raise ValueError(f"unknown built-in MUSE model {name!r}; use target or retrain")
    folder = assets.model(name)
    if (folder / "training.json").is_file():
        return folder
    configs = read_json(assets.root / "configs.json")
    build = configs["build"]
    tokenizer = load_tokenizer(assets.tokenizer)
    data = _chunks(assets, tokenizer, name, build["chunk_tokens"])
    target = data if name == "target" else _chunks(assets, tokenizer, "target", build["chunk_tokens"])
    finetune = FinetuneConfig(**build["finetune"])
    # the retrain model takes as many optimiser steps as the target (its data is smaller), so that both memorise
    # what they read equally well and the gaps on D_f measure what was read, not how long
    steps = lambda n: -(-n // finetune.batch_size)  # noqa: E731
    finetune = replace(finetune, epochs=round(finetune.epochs * steps(len(target)) / steps(len(data))))
    info = {"trained_on": TRAINING_SETS[name], "chunk_tokens": build["chunk_tokens"], "epochs": finetune.epochs}
    model = TinyLlamaConfig(**configs["model"])
    return build_tiny_model(folder, tokenizer, data, model, finetune, info, progress, f"fine-tune built-in {name}")


def _chunks(assets: MiniMuse, tokenizer, name: str, chunk_tokens: int):
    texts = [row["text"] for split in TRAINING_SETS[name] for row in load_muse(assets.data, "raw", split)]
    return chunk_texts(tokenizer, texts, chunk_tokens)
