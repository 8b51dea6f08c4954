"""Unlearning a Hugging Face causal LM with any method of the loss library, on ``accelerate``.

The same loop runs on CPU, one GPU or several (``accelerate launch``, DDP, FSDP or DeepSpeed). Batches are formed
here from the one seeded sampler of every loop (``simnpo.sampling``): each epoch shuffles the forget items with a
generator seeded for that epoch, cuts them into global batches of ``batch_size`` (the last one topped up from the
start of the order), and gives every process its slice of every
accumulation micro-step, so 1 process × 4 accumulation steps and 2 processes × 2 see the same global batches. Each
forget item is paired with a random retain item (seeded per epoch) and, for IdkPO, a random refusal. Token-mean
terms (GA, NLL, KL) divide by the global batch's token count, so a global batch's gradient does not depend on how it
is split across processes and micro-steps (the loss library's ``token_count``); sequence means are split-invariant
as they are, the micro-batches being of equal size.

Memory: SimNPO never needs a reference model. NPO's reference log-probabilities are the policy's own at step 0
(θ = θ_ref), computed once before training; only KL variants keep a frozen reference model resident.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from simnpo.llm.batches import References, loss_inputs, micro_batches
from simnpo.llm.data import EncodedBatch
from simnpo.llm.distributed import check_backend, configure_deepspeed, evaluation_view, nonfinite_loss
from simnpo.llm.finetune import lr_schedule
from simnpo.llm.generation import shard_map
from simnpo.llm.rmu import rmu_layers
from simnpo.llm.runtime import log_numbers, tracking
from simnpo.losses import (
    LossConfig,
    dual_ascent,
    keeps_reference_model,
    method_reads,
    predicted_positions,
    sequence_logprobs,
    unlearning_loss,
)
from simnpo.runs import read_json, write_json
from simnpo.sampling import seeded, topped_up_batches

SCHEDULES = ("linear", "constant")
OPTIMIZERS = ("adamw", "paged_adamw_32bit")


@dataclass(frozen=True)
class TrainerConfig:
    """One method's unlearning: its loss (``loss``, the loss library's config) and the optimisation. ``batch_size`` is
    the effective (global) batch; the gradient accumulation is batch_size / (per_device_batch_size × processes).
    Learning rate: linear warm-up over ``warmup_epochs`` then linear decay to 0 (``schedule="linear"``) or
    constant. ``max_grad_norm``: gradients clipped to this global norm on every backend (0: no clipping); 1.0 is the
    Hugging Face Trainer's default, under which the paper's and the benchmarks' runs were made. RMU reads the
    activations of decoder layer ``rmu_layer`` and trains only the parameters whose names match ``rmu_params``
    (default: the MLP down-projections of that layer and the two below, the WMDP repository's choice)."""

    loss: LossConfig = LossConfig()
    lr: float = 1e-5
    epochs: int = 10
    batch_size: int = 32
    per_device_batch_size: int | None = None
    weight_decay: float = 0.01
    warmup_epochs: float = 1.0
    schedule: str = "linear"
    optimizer: str = "adamw"
    bf16: bool = False
    gradient_checkpointing: bool = False
    lora_rank: int = 0
    max_length: int = 512
    max_grad_norm: float = 1.0
    rmu_layer: int = 7
    rmu_params: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not (self.lr > 0 and self.epochs >= 1 and self.batch_size >= 1 and self.warmup_epochs >= 0):
            raise ValueError("unlearning needs lr > 0, epochs >= 1, batch size >= 1 and warmup_epochs >= 0")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; use one of {', '.join(SCHEDULES)}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; use one of {', '.join(OPTIMIZERS)}")
        if not (math.isfinite(self.max_grad_norm) and self.max_grad_norm >= 0):
            raise ValueError(f"max_grad_norm must be >= 0 (0 = no clipping), got {self.max_grad_norm}")
        if self.lora_rank < 0:
            raise ValueError(f"lora_rank must be >= 0 (0 = full fine-tuning), got {self.lora_rank}")
        if self.method == "rmu" and self.lora_rank:
            raise ValueError("rmu trains its own chosen parameters (--rmu-params); drop --lora-rank")

    @property
    def method(self) -> str:
        return self.loss.method

    @classmethod
    def for_method(cls, method: str, values: dict) -> TrainerConfig:
        """The config of ``method`` from flat option values: the loss library's fields (beta, margin, …) go to
        ``loss``, the rest to the trainer; names of neither are ignored."""
        loss = LossConfig(method=method, **{k: v for k, v in values.items() if k in LOSS_OPTIONS})
        return cls(loss=loss, **{k: v for k, v in values.items() if k in TRAINING_OPTIONS})

    def accumulation(self, processes: int) -> int:
        per_device = self.per_device_batch_size or max(1, self.batch_size // processes)
        if self.batch_size % (per_device * processes):
            raise ValueError(
                f"batch size {self.batch_size} is not a multiple of per-device batch {per_device} × "
                f"{processes} processes; change --batch-size or --per-device-batch-size"
            )
        return self.batch_size // (per_device * processes)

    def steps_per_epoch(self, n_forget: int) -> int:
        """Optimizer steps per epoch over ``n_forget`` items: one per global batch, the last topped up."""
        return math.ceil(n_forget / self.batch_size)

    @classmethod
    def from_saved(cls, entry: dict) -> TrainerConfig:
        """A config as config.json holds it."""
        return cls.for_method(entry["loss"]["method"], {**entry["loss"], **entry})


# the option names each config takes: a new hyperparameter is one field (here or in LossConfig) plus one CLI option
LOSS_OPTIONS = tuple(f.name for f in dataclasses.fields(LossConfig) if f.name != "method")
TRAINING_OPTIONS = tuple(f.name for f in dataclasses.fields(TrainerConfig) if f.name != "loss")


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or infinite; the run stopped and kept its last good checkpoint."""


@dataclass
class UnlearningData:
    forget: EncodedBatch
    retain: EncodedBatch
    idk: EncodedBatch | None


def epoch_draws(n_forget: int, n_retain: int, batch_size: int, seed: int, epoch: int):
    """An epoch's global batches of forget items and each forget item's random retain partner [n_forget], both
    seeded for that epoch alone, so that a resumed run draws what an unbroken one would."""
    epoch_seed = seed * 100_003 + epoch
    batches = topped_up_batches(n_forget, batch_size, seeded(epoch_seed))
    return batches, torch.randint(n_retain, (n_forget,), generator=seeded(epoch_seed + 7))


@torch.no_grad()
def reference_logprobs(model, data: EncodedBatch, batch_size: int, accelerator) -> torch.Tensor:
    """log π(y|x) of every item of ``data`` under ``model`` [n] (on every process), shared out across processes."""

    def logprobs(indices: list[int]) -> list[float]:
        values = []
        for start in range(0, len(indices), batch_size):
            batch = data[torch.tensor(indices[start : start + batch_size])].trimmed().to(accelerator.device)
            logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False).logits
            values += sequence_logprobs(logits, batch.labels)[0].float().cpu().tolist()
        return values

    model.eval()
    return torch.tensor(shard_map(logprobs, list(range(len(data))), accelerator))


def token_mean_nll(model, data: EncodedBatch, batch_size: int, accelerator) -> float:
    """The token-mean NLL of ``data`` under ``model`` (PDU's retain loss of the starting model)."""
    return float(-reference_logprobs(model, data, batch_size, accelerator).sum() / answer_tokens(data).sum())


def make_optimizer(model, config: TrainerConfig):
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "paged_adamw_32bit":
        try:
            import bitsandbytes as bnb
        except ImportError:
            raise ValueError(
                "--optimizer paged_adamw_32bit needs bitsandbytes (pip install bitsandbytes, GPU only); "
                "or use --optimizer adamw"
            ) from None
        return bnb.optim.PagedAdamW32bit(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def with_lora(model, rank: int):
    """LoRA adapters of rank ``rank`` on every linear layer (``peft``); the base weights stay frozen."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise ValueError("--lora-rank needs peft: pip install 'simnpo[lora]'") from None
    config = LoraConfig(
        r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM"
    )
    with warnings.catch_warnings():  # peft reads transformers' renamed `is_gradient_checkpointing`; not ours to fix
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(model, config)


def training_ready(model, config: TrainerConfig):
    """The model as training needs it: non-reentrant activation checkpointing when asked (reentrant checkpointing,
    transformers 4.x's default, breaks under DDP when a step runs several forwards per backward, as ours do), then
    LoRA adapters when asked."""
    if config.gradient_checkpointing:
        if hasattr(model, "activation_checkpointing_enable"):  # transformers 5 (non-reentrant by default)
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return with_lora(model, config.lora_rank) if config.lora_rank else model


def answer_tokens(data: EncodedBatch) -> torch.Tensor:
    """|y| of every item [n]: its label positions after the one-position shift (``sequence_logprobs``' lengths)."""
    return predicted_positions(data.labels).sum(-1)


def unlearn(
    model,
    data: UnlearningData,
    config: TrainerConfig,
    accelerator,
    folder: Path,
    evaluate: Callable[[object, int], None] | None = None,
    eval_every: int = 0,
    progress: Callable | None = None,
    save_checkpoints: bool = True,
):
    """Unlearn ``data.forget`` from ``model`` (already on its way to ``accelerator``); checkpoints after every epoch
    to ``folder/checkpoint`` and resumes from it; calls ``evaluate(model, epoch)`` (through ``evaluation_view``)
    every ``eval_every`` epochs and after the last. Returns the prepared model: ``distributed.save_model`` writes
    it, ``accelerator.unwrap_model`` gives the plain model on one process."""
    check_backend(accelerator, config.method, config.lora_rank)
    reads = method_reads(config.method)
    accumulation = config.accumulation(accelerator.num_processes)
    accelerator.gradient_accumulation_steps = accumulation
    per_device = config.batch_size // (accelerator.num_processes * accumulation)
    model = training_ready(model, config)
    ref = References()
    if keeps_reference_model(reads):  # KL variants, UNDIAL and RMU read more of it than log π_ref
        ref.model = copy.deepcopy(model).eval().requires_grad_(False).to(accelerator.device)
    if any(read.output == "hidden" for read in reads):
        ref.rmu = rmu_layers(model, ref.model, config.rmu_layer, config.rmu_params, config.loss.steering, config.seed)
        ref.rmu.control = ref.rmu.control.to(accelerator.device)
    optimizer = make_optimizer(model, config)
    steps_per_epoch = config.steps_per_epoch(len(data.forget))
    total, warmup = config.epochs * steps_per_epoch, int(config.warmup_epochs * steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_schedule(config.schedule, total, warmup))
    accelerator.free_memory()  # forget models prepared by an earlier method: save/load_state cover this run only
    configure_deepspeed(accelerator, per_device, accumulation, config.max_grad_norm)
    model, optimizer = accelerator.prepare(model, optimizer)
    if ref.model is None and any(read.reference for read in reads):  # θ = θ_ref at step 0: computed once
        ref.forget = reference_logprobs(model, data.forget, per_device * 4, accelerator)
        if data.idk is not None:
            ref.refusal = reference_logprobs(model, data.idk, per_device * 4, accelerator)
    dual = dual_ascent(config.loss, lambda: token_mean_nll(model, data.retain, per_device * 4, accelerator))
    checkpoint = Path(folder) / "checkpoint"
    start_epoch = _resume(accelerator, checkpoint, scheduler, dual)
    advance = progress(f"{config.method}", (config.epochs - start_epoch) * steps_per_epoch) if progress else None
    tokens = answer_tokens(data.forget), answer_tokens(data.retain)
    for epoch in range(start_epoch, config.epochs):
        model.train()
        batches, partners = epoch_draws(len(data.forget), len(data.retain), config.batch_size, config.seed, epoch)
        for step, batch_idx in enumerate(batches):
            logged = []  # each micro-step's loss terms
            for batch in micro_batches(batch_idx, partners, tokens, accelerator):
                with accelerator.accumulate(model):  # forward and backward in one: DDP's no_sync spans both
                    inputs = loss_inputs(model, data, batch, ref, reads, accelerator.device)
                    loss, parts = unlearning_loss(inputs, config.loss, dual.multiplier if dual else None)
                    if (bad := nonfinite_loss(loss, accelerator)) is not None:  # every process stops at once
                        where = f"epoch {epoch + 1} step {step + 1}"
                        raise NonFiniteLoss(_nonfinite_message(config.method, bad, where, start_epoch, checkpoint))
                    norm = _backward_step(model, optimizer, loss, config, accelerator)
                    logged.append({"loss": loss.detach(), **{f"loss/{k}": v for k, v in parts.items()}})
            if tracking(accelerator):
                log_step(accelerator, logged, scheduler.get_last_lr()[0], norm, epoch * steps_per_epoch + step + 1)
            scheduler.step()
            if dual is not None:  # the global batch's retain loss, the same on every process
                retain = torch.stack([terms["loss/retain"] for terms in logged]).mean()
                dual.after_step(accelerator.reduce(retain, "mean").item(), epoch)
            if advance:
                advance(1, f"loss {loss.item():.4f}")
        if dual is not None:
            dual.after_epoch(epoch + 1)
        if save_checkpoints:
            _save_checkpoint(accelerator, checkpoint, epoch + 1, scheduler, dual)
        start_epoch = epoch + 1
        if evaluate and (epoch + 1 == config.epochs or (eval_every and (epoch + 1) % eval_every == 0)):
            with evaluation_view(model, accelerator) as view:
                evaluate(view, epoch + 1)
    model.eval()
    return model


def _backward_step(model, optimizer, loss, config: TrainerConfig, accelerator):
    """Backward, and on the last micro-step of a global batch clip and step (accelerate skips the step otherwise;
    under DeepSpeed the engine clips, ``configure_deepspeed`` having given it the same norm). Returns the gradient
    norm before clipping when it was measured (clipping, or tracking: an infinite bound measures without clipping)."""
    accelerator.backward(loss)
    norm = None
    if accelerator.sync_gradients and (config.max_grad_norm or tracking(accelerator)):
        norm = accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm or math.inf)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return norm


def log_step(accelerator, logged: list[dict], lr: float, norm, step: int) -> None:
    """One optimizer step to the trackers: each loss term's mean over the micro-steps and processes, the lr and the
    gradient norm (collective: every process calls it)."""
    means = torch.stack([torch.stack([m[key] for m in logged]).mean() for key in logged[0]])
    terms = dict(zip(logged[0], accelerator.reduce(means, "mean").tolist()))  # one collective for every term
    log_numbers(accelerator, {**terms, "lr": lr, "grad_norm": None if norm is None else float(norm)}, step)


def _nonfinite_message(method: str, bad: tuple[float, int | None], where: str, start: int, checkpoint) -> str:
    value, process = bad
    kept = f"epoch {start} state in {checkpoint}" if start else "the starting model"
    seen = f"{value}" if process is None else f"{value} on process {process}"
    return f"{method}: the loss became {seen} at {where}; stopped, keeping {kept}; lower --lr or --beta"


def _resume(accelerator, checkpoint: Path, scheduler, dual=None) -> int:
    """The epoch to start from: 0, or the saved epoch after loading the full training state from ``checkpoint``
    (PDU's dual variable included)."""
    if not (checkpoint / "state.json").is_file():
        return 0
    accelerator.load_state(str(checkpoint))
    state = read_json(checkpoint / "state.json")
    scheduler.load_state_dict(state["scheduler"])
    if dual is not None:
        dual.multiplier, dual.epsilon = state["dual"]
    return state["epoch"]


def _save_checkpoint(accelerator, checkpoint: Path, epoch: int, scheduler, dual=None) -> None:
    """Save the full training state under a temporary name and swap it in, so a kill never leaves half a state:
    every process writes its part (RNG states, shards) before the main process renames the folder."""
    staging = checkpoint.with_name(checkpoint.name + ".tmp")
    if accelerator.is_main_process and staging.exists():  # left by a run killed while saving
        shutil.rmtree(staging)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(staging), safe_serialization=False)  # tied embeddings: no safetensors warnings
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        state = {"epoch": epoch, "scheduler": scheduler.state_dict()}
        write_json(staging / "state.json", state | ({"dual": [dual.multiplier, dual.epsilon]} if dual else {}))
        if checkpoint.exists():
            shutil.rmtree(checkpoint)
        staging.rename(checkpoint)
    accelerator.wait_for_everyone()
