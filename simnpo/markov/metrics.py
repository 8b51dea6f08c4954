"""Exact KL metrics against the true chains (docs/markov.md).

KL(P_true(·|s_t) ‖ p_model(·|x_≤t)) is averaged over every predicted position of a test set, where P_true is the
transition row of the chain that generated the sequence: "retain distance" on the retain test set, "forget
quality" on each forget test set (larger = more forgotten).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from simnpo.losses import IGNORE_INDEX


def kl_from_rows(true_rows: Tensor, logits: Tensor, labels: Tensor) -> Tensor:
    """Mean KL(true ‖ model) over predicted positions, per sequence [n].

    true_rows [n, T, S]: the true next-state distribution at each position; logits [n, T, S]: the model's;
    labels [n, T] in the Hugging Face convention (position t is scored when labels[t+1] != -100).
    """
    mask = labels[:, 1:] != IGNORE_INDEX
    p = true_rows[:, :-1]
    logq = F.log_softmax(logits[:, :-1].float(), dim=-1)
    kl = (p * (torch.log(p.clamp_min(1e-30)) - logq)).sum(-1)  # 0·log 0 = 0
    return (kl * mask).sum(-1), mask.sum(-1)


def kl_to_chain(logits: Tensor, input_ids: Tensor, labels: Tensor, transition: np.ndarray) -> float:
    """Token-averaged KL from the chain's transition rows at the current states to the model's predictions."""
    rows = torch.as_tensor(transition, dtype=torch.float32, device=logits.device)[input_ids]
    total, count = kl_from_rows(rows, logits, labels)
    return (total.sum() / count.sum()).item()


def kl_to_model(logits: Tensor, ref_logits: Tensor, labels: Tensor) -> float:
    """Token-averaged KL from another model's next-state distributions (e.g. the retrained model) to this one's."""
    total, count = kl_from_rows(F.softmax(ref_logits.float(), dim=-1), logits, labels)
    return (total.sum() / count.sum()).item()


def exact_chain_kl(input_ids: Tensor, labels: Tensor, true: np.ndarray, model: np.ndarray) -> float:
    """KL from ``true``'s rows to ``model``'s rows at the visited states: what a model that has learned exactly
    the chain ``model`` (e.g. the retain chain only) scores on sequences of ``true``."""
    logits = torch.log(torch.as_tensor(model, dtype=torch.float32))[input_ids]
    return kl_to_chain(logits, input_ids, labels, true)
