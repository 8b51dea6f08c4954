"""Losses of whole next-token distributions: the KL retain term, UNDIAL and CE-U (cross-entropy to a target
distribution), and PDU's logit-margin flattening.

Positions: our convention is the positions that predict an answer token (the shifted labels, as every token mean
here counts them). Where open-unlearning takes other positions, its choice is a named convention (docs/conventions.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from simnpo.losses.tokens import IGNORE_INDEX, predicted_positions, token_mean

KL_POSITIONS = ("response", "all")
# UNDIAL: "answer" (the paper: the answer tokens' positions) or "open_unlearning" (every shifted position, prompt and
# padding included, whose label -100 lowers vocabulary entry V - 100 there: its indexing, kept as it computes)
UNDIAL_POSITIONS = ("answer", "open_unlearning")
# PDU's flattening: "answer" (the logits predicting answer tokens) or "open_unlearning" (the logits at the answer
# tokens' own positions, one later: its ``pdu.py`` masks unshifted logits with the unshifted labels)
FLATTENING_POSITIONS = ("answer", "open_unlearning")


def kl_to_reference(
    logits: Tensor, ref_logits: Tensor, labels: Tensor, positions: str = "response", token_count=None
) -> Tensor:
    """KL(π_ref(·|context) ‖ π_θ(·|context)) of next-token distributions, averaged over positions (KLR term).

    logits, ref_logits: [batch, seq, vocab]; labels: [batch, seq] as in ``token_logprobs``.
    ``positions="response"`` averages over the shifted label positions only (our default); ``"all"`` averages over
    every position of the padded batch, prompt and padding included, as the authors' released code does (per
    batch, so ``token_count``, the divisor of the response positions' sum, applies to ``"response"`` only).
    """
    if positions not in KL_POSITIONS:
        raise ValueError(f"unknown KL positions {positions!r}; use one of {', '.join(KL_POSITIONS)}")
    logq = F.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)
    logp_ref = F.log_softmax(ref_logits.to(logq.dtype), dim=-1)
    kl = F.kl_div(logq, logp_ref, reduction="none", log_target=True).sum(-1)  # [batch, seq]
    if positions == "all":
        return kl.mean()
    mask = predicted_positions(labels)
    return token_mean((kl[:, :-1] * mask).sum(), mask.sum(), token_count)


def cross_entropy_to(target: Tensor, logits: Tensor) -> Tensor:
    """Per position −Σ_v q_v · log softmax(z)_v [...]: the cross-entropy of the model's distribution to a target
    distribution q (detached by the caller), in at least float32."""
    logq = F.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)
    return -(target.to(logq.dtype) * logq).sum(-1)


def undial_loss(
    logits: Tensor, ref_logits: Tensor, labels: Tensor, beta: float, positions: str = "answer", token_count=None
) -> Tensor:
    """UNDIAL (Dong et al. 2024, "UNDIAL: Self-Distillation with Adjusted Logits"): the cross-entropy of the model's
    next-token distribution to softmax(z_ref − β · onehot(y_t)), the frozen reference's logits with the answer
    token's lowered by β, averaged over the answer positions (``positions="answer"``, a token mean) or, as
    open-unlearning computes it, over every shifted position of the padded batch (``"open_unlearning"``, where an
    unlabelled position's -100 lowers vocabulary entry V − 100). β = 0 is distillation to the reference.

    logits, ref_logits: [batch, seq, vocab]; labels: [batch, seq] as in ``token_logprobs``."""
    if positions not in UNDIAL_POSITIONS:
        raise ValueError(f"unknown UNDIAL positions {positions!r}; use one of {', '.join(UNDIAL_POSITIONS)}")
    shifted, vocab = labels[:, 1:], logits.shape[-1]
    # open-unlearning indexes the vocabulary with the label -100 itself: entry V - 100 (-100 modulo V)
    index = shifted.masked_fill(shifted == IGNORE_INDEX, 0 if positions == "answer" else IGNORE_INDEX % vocab)
    ref = ref_logits[:, :-1].detach().to(torch.promote_types(ref_logits.dtype, torch.float32))
    lowered = ref.scatter_add(-1, index[..., None], torch.full_like(ref[..., :1], -beta))
    per_position = cross_entropy_to(F.softmax(lowered, dim=-1), logits[:, :-1])
    if positions == "open_unlearning":
        return per_position.mean()
    mask = predicted_positions(labels)
    return token_mean((per_position * mask).sum(), mask.sum(), token_count)


def ceu_loss(logits: Tensor, labels: Tensor, ignore_first_answer_tokens: int = 1, token_count=None) -> Tensor:
    """CE-U (Yang 2025, arXiv 2503.01224, "cross-entropy unlearning"): the cross-entropy of the model's next-token
    distribution to its own detached distribution with the answer token's logit set to −∞, averaged over the answer
    positions but each answer's first ``ignore_first_answer_tokens`` (the paper's footnote; open-unlearning 1).

    logits: [batch, seq, vocab]; labels: [batch, seq] as in ``token_logprobs``."""
    mask = predicted_positions(labels)
    mask = mask & (mask.cumsum(-1) > ignore_first_answer_tokens)
    z = logits[:, :-1]
    index = labels[:, 1:].clamp(min=0)[..., None]
    target = z.detach().to(torch.promote_types(z.dtype, torch.float32)).scatter(-1, index, float("-inf"))
    per_position = cross_entropy_to(F.softmax(target, dim=-1), z)
    return token_mean((per_position * mask).sum(), mask.sum(), token_count)


def flattening_loss(logits: Tensor, labels: Tensor, positions: str = "answer", token_count=None) -> Tensor:
    """PDU's forget loss (Entesari et al. 2025, "Constrained Entropic Unlearning"), logit-margin flattening as
    open-unlearning's ``pdu.py`` computes it: (max_v z_v − mean_v z_v)² per position, averaged over the positions
    that predict answer tokens (``"answer"``) or over the answer tokens' own positions (``"open_unlearning"``).
    Zero when every logit is equal: the uniform distribution, softmax-free.

    logits: [batch, seq, vocab]; labels: [batch, seq] as in ``token_logprobs``."""
    if positions not in FLATTENING_POSITIONS:
        raise ValueError(f"unknown flattening positions {positions!r}; use one of {', '.join(FLATTENING_POSITIONS)}")
    if positions == "answer":
        z, mask = logits[:, :-1], predicted_positions(labels)
    else:
        z, mask = logits, labels != IGNORE_INDEX
    z = z.to(torch.promote_types(z.dtype, torch.float32))
    per_position = (z.max(-1).values - z.mean(-1)).pow(2)
    return token_mean((per_position * mask).sum(), mask.sum(), token_count)
