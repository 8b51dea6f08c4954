"""One micro-batch of unlearning: which rows of the forget, retain and refusal data it takes, the divisors of its
token means, and its forward passes, one per batch and model the method reads (``losses.gather_inputs``)."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch

from simnpo.llm.data import EncodedBatch
from simnpo.llm.rmu import RmuLayers, layer_output
from simnpo.losses import LossInputs, Outputs, computed_outputs, gather_inputs, outputs_of


@dataclass
class References:
    """What the reference model (the policy at step 0) contributes: log π_ref of each forget item and refusal,
    computed once, and, for methods reading more of it (KL, UNDIAL, RMU), a frozen copy kept resident."""

    forget: torch.Tensor | None = None
    refusal: torch.Tensor | None = None
    model: object | None = None
    rmu: RmuLayers | None = None


@dataclass
class MicroBatch:
    """One process's share of one accumulation micro-step: forget rows, their retain partners, and the divisors of
    the token-mean terms (the global batch's token counts over its number of micro-batches)."""

    forget: torch.Tensor
    retain: torch.Tensor
    forget_token_count: float
    retain_token_count: float


def loss_inputs(model, data, batch: MicroBatch, ref: References, reads, device) -> LossInputs:
    """The loss library's inputs of one micro-batch: one forward pass per batch and model the method reads
    (``losses.gather_inputs``), each giving what is read of it."""
    rows = {
        "forget": (data.forget, batch.forget, batch.forget_token_count),
        "retain": (data.retain, batch.retain, batch.retain_token_count),
        "refusal": (data.idk, batch.forget, batch.forget_token_count),
    }

    def forward(name: str, reference: bool, wanted: frozenset[str]) -> Outputs:
        source, idx, token_count = rows[name]
        encoded = source[idx].trimmed().to(device)
        if reference and ref.model is None:  # log π_ref, computed once before the first step
            return computed_outputs(encoded.labels, getattr(ref, name)[idx].to(device), token_count)
        layer = None if "hidden" not in wanted else ref.rmu.frozen_layer if reference else ref.rmu.layer
        with torch.no_grad() if reference else nullcontext():
            logits, hidden = _forward(ref.model if reference else model, encoded, layer)
        return outputs_of(logits, encoded.labels, wanted, hidden, token_count)

    return gather_inputs(reads, forward, ref.rmu.control if ref.rmu else None)


def _forward(model, batch: EncodedBatch, layer: torch.nn.Module | None = None):
    """Logits and (given ``layer``) its hidden states at the positions that predict a token [batch, seq - 1, d],
    aligned with the shifted labels as the token-mean terms count them."""
    with layer_output(layer) if layer is not None else nullcontext([]) as hidden:
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False).logits
    return logits, hidden[0][:, :-1] if hidden else None


def micro_batches(
    batch_idx: torch.Tensor, partners: torch.Tensor, tokens: tuple[torch.Tensor, torch.Tensor], accelerator
) -> list[MicroBatch]:
    """This process's micro-batches of one global batch: micro-step m of process r takes the slice
    (m · processes + r) of the batch; token counts are the global batch's, shared out over all micro-batches."""
    world, rank = accelerator.num_processes, accelerator.process_index
    accumulation = accelerator.gradient_accumulation_steps
    shares = world * accumulation
    per_device = len(batch_idx) // shares
    forget_count = tokens[0][batch_idx].sum().item() / shares
    retain_count = tokens[1][partners[batch_idx]].sum().item() / shares
    out = []
    for micro in range(accumulation):
        idx = batch_idx[(micro * world + rank) * per_device :][:per_device]
        out.append(MicroBatch(idx, partners[idx], forget_count, retain_count))
    return out
