"""What several processes need, done the way ``accelerate``, DeepSpeed and FSDP intend.

- One decision, one writer: ``on_main`` runs a step (choosing the run folder, saving config.json) on the main
  process alone and shares its result, or its one-line error, with every process.
- Sharded backends (FSDP, DeepSpeed ZeRO-3) split every parameter across processes. Evaluation then goes through
  ``evaluation_view`` (FSDP's root parameters gathered; ZeRO-3 gathers each layer in its forward) and generation
  keeps every process stepping (``synced_gpus``, ``generation.greedy_generate``); the final model is gathered by
  every process and written by one (``save_model``); models evaluated on their own are loaded outside DeepSpeed's
  ``zero.Init`` (``plain_loading``) so they hold their weights, not placeholders.
- A NaN seen by one process is seen by all (``nonfinite_loss``), so every process stops with the same line instead
  of the others hanging in the next all-reduce.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch

from simnpo.losses import keeps_reference_model, method_reads


def on_main(accelerator, step: Callable[[], object], others_too: bool = False) -> object:
    """``step()`` run by the main process, its result shared with every process; or, ``others_too``, run by every
    other process after the main one finished (it may write caches the others then read). A ValueError of the
    main process is raised on every process, so none waits for a step that failed."""
    outcome, result = [None], None
    if accelerator.is_main_process:
        try:
            result = step()
            outcome = [("ok", None if others_too else result)]
        except ValueError as err:
            outcome = [("error", str(err))]
    if accelerator.num_processes > 1:
        from accelerate.utils import broadcast_object_list

        broadcast_object_list(outcome)
    kind, value = outcome[0]
    if kind == "error":
        raise ValueError(value)
    if accelerator.is_main_process:
        return result
    return step() if others_too else value


def sharded_backend(accelerator) -> str | None:
    """The backend's name when it shards parameters across processes (FSDP, DeepSpeed ZeRO-3), else None."""
    kind = str(getattr(accelerator.distributed_type, "value", accelerator.distributed_type))
    if kind == "FSDP":
        return "FSDP"
    plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    if kind == "DEEPSPEED" and plugin is not None and plugin.zero_stage == 3:
        return "DeepSpeed ZeRO-3"
    return None


def check_backend(accelerator, method: str, lora_rank: int) -> None:
    """Refuse, with one line, what a sharded backend cannot run: a frozen reference copy (KL variants, RMU; it
    would be a whole unsharded model on every GPU) and LoRA (its merge needs the whole base weights)."""
    backend = sharded_backend(accelerator)
    if backend is None:
        return
    if keeps_reference_model(method_reads(method)):
        raise ValueError(
            f"{method} keeps a frozen reference model, which {backend} cannot shard here (it would be a whole copy "
            "on every GPU); use an NLL variant, or DDP (multi_gpu.yaml) for a model that fits twice on one GPU"
        )
    if lora_rank:
        raise ValueError(f"--lora-rank is not supported under {backend}; LoRA runs under DDP (multi_gpu.yaml)")


def is_sharded(model) -> bool:
    """Whether ``model``'s parameters are split across processes (ZeRO-3 partitions, FSDP 1 or 2 units)."""
    if any(hasattr(p, "ds_id") for p in model.parameters()):  # DeepSpeed ZeRO-3 tags every partitioned parameter
        return True
    from torch.distributed import fsdp

    kinds = tuple(k for k in (getattr(fsdp, "FullyShardedDataParallel", None), getattr(fsdp, "FSDPModule", None)) if k)
    return any(isinstance(module, kinds) for module in model.modules())


def synced_generation(model) -> bool:
    """``generate(synced_gpus=…)``: a sharded model must keep every process running forward passes until the
    slowest finishes, because each forward gathers parameters from all of them."""
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    return distributed and torch.distributed.get_world_size() > 1 and is_sharded(model)


@contextmanager
def evaluation_view(model, accelerator) -> Iterator[object]:
    """The prepared model as evaluation calls it: unwrapped (DDP's wrapper and DeepSpeed's engine removed), in eval
    mode, without gradients (``no_grad``, not ``inference_mode``: training continues on these parameters). Under
    FSDP 1 the root's own parameters (embeddings, final norm, head) are gathered for the duration, because calling
    the inner module bypasses the root's unsharding; nested units and ZeRO-3 layers gather in their forward."""
    model.eval()
    gather = nullcontext()
    from torch.distributed import fsdp

    if isinstance(model, getattr(fsdp, "FullyShardedDataParallel", ())):
        gather = fsdp.FullyShardedDataParallel.summon_full_params(model, recurse=False, writeback=False)
    with gather, torch.no_grad():
        yield accelerator.unwrap_model(model)
    model.train()


def plain_loading(accelerator):
    """A context for loading a model that is evaluated on its own (never prepared): outside DeepSpeed's
    ``zero.Init``, which would otherwise build it from empty ZeRO-3 placeholders."""
    plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    return plugin.zero3_init_context_manager(enable=False) if plugin is not None else nullcontext()


def configure_deepspeed(accelerator, micro_batch: int, accumulation: int, max_grad_norm: float) -> None:
    """Fill DeepSpeed's "auto" batch values from our batches (we prepare no DataLoader, from which accelerate would
    read them) and set its clipping to ours, so every backend clips alike."""
    plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    if plugin is None:
        return
    plugin.deepspeed_config.update(
        train_micro_batch_size_per_gpu=micro_batch,
        gradient_accumulation_steps=accumulation,
        train_batch_size=micro_batch * accumulation * accelerator.num_processes,
        gradient_clipping=max_grad_norm,
    )


def nonfinite_loss(loss: torch.Tensor, accelerator) -> tuple[float, int | None] | None:
    """(value, process) of the first process whose loss is NaN or infinite, the same on every process (process
    None when there is only one); None when every loss is finite."""
    values = loss.detach().float().reshape(1)
    if accelerator.num_processes == 1:
        return None if torch.isfinite(values).all() else (values.item(), None)
    values = accelerator.gather(values)
    bad = (~torch.isfinite(values)).nonzero().flatten()
    return (values[bad[0]].item(), int(bad[0])) if len(bad) else None


def save_model(model, accelerator, folder: Path, tokenizer) -> None:
    """The final model with its tokenizer in ``folder``: the full weights gathered by every process
    (``get_state_dict``: ZeRO-3 partitions, FSDP shards) and written by the main process under a temporary name
    renamed into place, so a kill never leaves half a model. LoRA adapters are merged into the base weights."""
    folder = Path(folder)
    staging = folder.with_name(folder.name + ".tmp")
    unwrapped = accelerator.unwrap_model(model)
    lora = hasattr(unwrapped, "merge_and_unload")  # never sharded (check_backend): merged on the main process
    state = None if lora else accelerator.get_state_dict(model)  # every process takes part in the gathering
    if accelerator.is_main_process:
        shutil.rmtree(staging, ignore_errors=True)
        if lora:
            unwrapped.merge_and_unload().save_pretrained(str(staging))
        else:
            unwrapped.save_pretrained(str(staging), state_dict=state)
        tokenizer.save_pretrained(str(staging))
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)
    accelerator.wait_for_everyone()
