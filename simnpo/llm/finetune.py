"""Plain next-token fine-tuning on question/answer pairs: how the built-in benchmarks make their target and retain
models. (Unlearning has its own trainer; this loop only memorises data.)"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from simnpo.llm.models import TinyLlamaConfig, tiny_llama
from simnpo.llm.tofu_data import EncodedBatch
from simnpo.losses import nll_loss, sequence_logprobs
from simnpo.runs import cache_key, staged_folder, write_json


@dataclass(frozen=True)
class FinetuneConfig:
    """AdamW with linear warm-up then cosine decay; enough epochs for a small model to memorise its data."""

    epochs: int = 30
    lr: float = 3e-3
    batch_size: int = 32
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not (self.epochs >= 1 and self.lr > 0 and self.batch_size >= 1 and 0 <= self.warmup_ratio < 1):
            raise ValueError("fine-tuning needs epochs >= 1, lr > 0, batch size >= 1 and warmup_ratio in [0, 1)")


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up to 1 over ``warmup`` steps, then cosine decay to 0 at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def batch_nll(model, batch: EncodedBatch) -> torch.Tensor:
    """Token-mean NLL of the answers of a batch (the same loss the unlearning trainer keeps on retain data)."""
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    return nll_loss(*sequence_logprobs(logits, batch.labels))


def finetune(model, data: EncodedBatch, config: FinetuneConfig, step: Callable[[float], None] | None = None) -> float:
    """Fine-tune ``model`` on ``data`` in shuffled mini-batches; returns the mean loss of the last epoch."""
    device = next(model.parameters()).device
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    per_epoch = math.ceil(len(data) / config.batch_size)
    total = per_epoch * config.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: lr_factor(s, total, max(1, int(config.warmup_ratio * total)))
    )
    generator = torch.Generator().manual_seed(config.seed)
    model.train()
    for _ in range(config.epochs):
        order = torch.randperm(len(data), generator=generator)
        epoch_loss = 0.0
        for start in range(0, len(data), config.batch_size):
            batch = data[order[start : start + config.batch_size]].trimmed().to(device)
            loss = batch_nll(model, batch)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            scheduler.step()
            epoch_loss += loss.item() / per_epoch
            if step:
                step(loss.item())
    model.eval()
    return epoch_loss


def build_tiny_model(
    folder: Path,
    tokenizer,
    data: EncodedBatch,
    model_config: TinyLlamaConfig,
    config: FinetuneConfig,
    info: dict,
    step: Callable[[float], None] | None = None,
    total: Callable[[int], None] | None = None,
) -> Path:
    """A fresh tiny Llama fine-tuned on ``data`` and saved with its tokenizer and ``training.json`` (``info`` plus
    the item count and last-epoch loss) into ``folder``, which appears only when complete. ``total(n)`` is told the
    number of optimiser steps before training starts, ``step(loss)`` after each."""
    model = tiny_llama(model_config, tokenizer, seed=config.seed)
    if total:
        total(config.epochs * -(-len(data) // config.batch_size))
    last_epoch_loss = finetune(model, data, config, step)
    with staged_folder(folder) as stage:
        model.save_pretrained(str(stage))
        tokenizer.save_pretrained(str(stage))
        write_json(stage / "training.json", {**info, "items": len(data), "last_epoch_loss": last_epoch_loss})
    return Path(folder)


def progress_callbacks(progress, description: str):
    """The ``(step, total)`` callbacks of ``build_tiny_model`` driving one bar of ``progress``, made when the
    number of steps is known."""
    state = {}

    def total(n: int) -> None:
        state["advance"] = progress(description, n)

    return (lambda loss: state["advance"](1)), total


@dataclass(frozen=True)
class BuiltinAssets:
    """Paths of a built-in benchmark: its data, its tokenizer and a folder per model."""

    root: Path
    data: Path
    tokenizer: Path

    def model(self, name: str) -> Path:
        return self.root / name


def builtin_assets(cache: Path, configs: dict, write: Callable[[Path], None]) -> BuiltinAssets:
    """The folder of a built-in benchmark, ``cache/mini-<hash of configs>``: made on first use by ``write(stage)``
    (which writes ``data/`` and ``tokenizer/``) in a staging folder renamed into place when complete, with the
    configs saved beside."""
    root = Path(cache) / f"mini-{cache_key(**configs)}"
    assets = BuiltinAssets(root, root / "data", root / "tokenizer")
    if not (assets.tokenizer / "tokenizer.json").is_file():
        with staged_folder(root) as stage:
            write(stage)
            write_json(stage / "configs.json", configs)
    return assets
