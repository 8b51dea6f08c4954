"""Plain next-token fine-tuning on question/answer pairs: how the built-in benchmarks make their target and retain
models. (Unlearning has its own trainer; this loop only memorises data.)"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from simnpo.llm.data import EncodedBatch
from simnpo.llm.models import TinyLlamaConfig, tiny_llama
from simnpo.losses import nll_loss, sequence_logprobs
from simnpo.runs import cache_key, staged_folder, write_json
from simnpo.sampling import pass_batches, seeded


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


def lr_schedule(kind: str, total: int, warmup: int) -> Callable[[int], float]:
    """The learning-rate factor of each optimiser step: linear warm-up over ``warmup`` steps, then ``constant``,
    ``linear`` decay to 0 at ``total``, or ``cosine`` decay to 0. The warm-up starts at 1/warmup where
    ``transformers.get_scheduler`` starts at 0 (its first step does nothing); ours is kept because every built-in
    model and number was made with it."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if kind == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total - warmup)
        if kind == "cosine":
            return 0.5 * (1 + math.cos(math.pi * progress))
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor


def batch_nll(model, batch: EncodedBatch) -> torch.Tensor:
    """Token-mean NLL of the answers of a batch (the same loss the unlearning trainer keeps on retain data)."""
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False).logits
    return nll_loss(*sequence_logprobs(logits, batch.labels))


def train_nll(
    model,
    data: EncodedBatch,
    batches: Iterable[torch.Tensor],
    optimiser,
    scheduler=None,
    before_step: Callable[[int], None] | None = None,
    advance: Callable | None = None,
) -> float:
    """Plain next-token NLL on ``data``, one optimiser step per batch of row indices: the loop of fine-tuning and of
    relearning. ``before_step(step)`` runs before each step (relearning evaluates there). Returns the mean loss."""
    device = next(model.parameters()).device
    losses = []
    for step, idx in enumerate(batches):
        if before_step:
            before_step(step)
        model.train()
        loss = batch_nll(model, data[idx].trimmed().to(device))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        if scheduler is not None:
            scheduler.step()
        losses.append(loss.item())
        if advance:
            advance(1, f"loss {losses[-1]:.4f}")
    model.eval()
    return sum(losses) / max(1, len(losses))


def finetune(model, data: EncodedBatch, config: FinetuneConfig, advance: Callable | None = None) -> float:
    """Fine-tune ``model`` on ``data`` in shuffled mini-batches; returns the mean loss of the last epoch."""
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    total = math.ceil(len(data) / config.batch_size) * config.epochs
    warmup = max(1, int(config.warmup_ratio * total))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, lr_schedule("cosine", total, warmup))
    generator = seeded(config.seed)
    for _ in range(config.epochs):
        batches = pass_batches(len(data), config.batch_size, generator)
        epoch_loss = train_nll(model, data, batches, optimiser, scheduler, advance=advance)
    return epoch_loss


def build_tiny_model(
    folder: Path,
    tokenizer,
    data: EncodedBatch,
    model_config: TinyLlamaConfig,
    config: FinetuneConfig,
    info: dict,
    progress: Callable | None = None,
    description: str = "fine-tune",
) -> Path:
    """A fresh tiny Llama fine-tuned on ``data`` and saved with its tokenizer and ``training.json`` (``info`` plus
    the item count and last-epoch loss) into ``folder``, which appears only when complete. ``progress`` (a
    ``progress(description, total) -> advance`` factory) shows the optimiser steps."""
    model = tiny_llama(model_config, tokenizer, seed=config.seed)
    steps = config.epochs * -(-len(data) // config.batch_size)
    last_epoch_loss = finetune(model, data, config, progress(description, steps) if progress else None)
    with staged_folder(folder) as stage:
        model.save_pretrained(str(stage))
        tokenizer.save_pretrained(str(stage))
        write_json(stage / "training.json", {**info, "items": len(data), "last_epoch_loss": last_epoch_loss})
    return Path(folder)


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
