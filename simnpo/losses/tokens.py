"""Log-probabilities of labelled tokens and token means: what every loss is computed from (conventions in the
package docstring)."""

from __future__ import annotations

import torch
from torch import Tensor

IGNORE_INDEX = -100


def token_logprobs(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Per-position log-probabilities of the labels, after the causal shift.

    logits: [batch, seq, vocab] (position t predicts token t+1); labels: [batch, seq], aligned with the inputs
    as in Hugging Face (-100 where nothing is predicted).
    Returns (logp [batch, seq-1], mask [batch, seq-1]); logp is 0 where mask is False. Computed in at least float32 as
    gather - logsumexp, which keeps no [batch, seq, vocab] log-softmax alive for the backward pass.
    """
    logits = logits[:, :-1, :]
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()  # summed log-probs of long answers need more than 8 bits of mantissa
    mask = predicted_positions(labels)
    labels = labels[:, 1:]
    safe_labels = labels.masked_fill(~mask, 0).unsqueeze(-1)
    logp = logits.gather(-1, safe_labels).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    return logp.masked_fill(~mask, 0.0), mask


def sequence_logprobs(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """log π(y|x) and |y| per sequence: (sum of response log-probs [batch], response token count [batch])."""
    logp, mask = token_logprobs(logits, labels)
    return logp.sum(-1), mask.sum(-1)


def predicted_positions(labels: Tensor) -> Tensor:
    """The positions whose next token is labelled [batch, seq - 1]: those every token sum and token mean counts."""
    return labels[:, 1:] != IGNORE_INDEX


def token_mean(total: Tensor, count: Tensor, token_count: float | Tensor | None = None) -> Tensor:
    """A sum over tokens divided by ``token_count`` when given (a global batch's share, module docstring), else by
    this batch's own token ``count`` (at least 1)."""
    return total / (count.clamp(min=1) if token_count is None else token_count)
