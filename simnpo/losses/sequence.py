"""Losses of whole answers (log π(y|x) summed over the answer, |y|): gradient ascent and the NLL retain term (token
means), NPO, SimNPO and DPO / IdkPO (means over sequences), and NPO's and SimNPO's gradient weights."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from simnpo.losses.tokens import token_mean

MARGIN_CONVENTIONS = ("paper", "authors_code")


def ga_loss(logps: Tensor, lengths: Tensor, token_count: float | Tensor | None = None) -> Tensor:
    """Gradient ascent: L = -NLL_f, the token-mean negative log-likelihood of the forget batch, negated.

    Unbounded below: it diverges if run long. ``token_count``: what the token sum is divided by (default: this
    batch's token count; see the module docstring).
    """
    return token_mean(logps.sum(), lengths.sum(), token_count)


def npo_loss(logps: Tensor, ref_logps: Tensor, beta: float) -> Tensor:
    """NPO (Zhang et al. 2024): L = -(2/β) · log σ(-β · [log π_θ(y|x) - log π_ref(y|x)]), mean over sequences."""
    return (-2.0 / beta * F.logsigmoid(-beta * (logps - ref_logps))).mean()


def simnpo_margin(margin: float, beta: float, convention: str = "paper") -> float:
    """The paper's γ for a margin given in either convention.

    The authors' TOFU code computes σ(β·(ℓ̄ - γ')) with ℓ̄ = -log π/|y|, so its margin is multiplied by β:
    γ_paper = β·γ'. ``convention="paper"`` takes γ as is; ``"authors_code"`` takes γ' and returns β·γ'.
    """
    if convention == "paper":
        return margin
    if convention == "authors_code":
        return beta * margin
    raise ValueError(f"unknown margin convention {convention!r}; use one of {', '.join(MARGIN_CONVENTIONS)}")


def simnpo_loss(
    logps: Tensor, lengths: Tensor, beta: float, margin: float = 0.0, margin_convention: str = "paper"
) -> Tensor:
    """SimNPO (paper Eq. 4): L = -(2/β) · log σ(-(β/|y|) · log π_θ(y|x) - γ), mean over sequences.

    No reference model; β > 0 is the inverse temperature, γ ≥ 0 the reward margin. As β → 0 with γ = 0 it is
    (2/β)·log 2 plus the length-normalised log-likelihood: length-normalised gradient ascent.
    """
    gamma = simnpo_margin(margin, beta, margin_convention)
    z = -beta * logps / lengths.clamp(min=1) - gamma
    return (-2.0 / beta * F.logsigmoid(z)).mean()


def dpo_loss(
    chosen_logps: Tensor, rejected_logps: Tensor, ref_chosen_logps: Tensor, ref_rejected_logps: Tensor, beta: float
) -> Tensor:
    """DPO with the (2/β) scale of NPO; IdkPO when the chosen answer y_w is a refusal ("I don't know.").

    L = -(2/β) · log σ(β · [(log π_θ(y_w) - log π_ref(y_w)) - (log π_θ(y_l) - log π_ref(y_l))]), y_l the forget
    answer. Dropping the y_w term gives NPO.
    """
    chosen = chosen_logps - ref_chosen_logps
    rejected = rejected_logps - ref_rejected_logps
    return (-2.0 / beta * F.logsigmoid(beta * (chosen - rejected))).mean()


def nll_loss(logps: Tensor, lengths: Tensor, token_count: float | Tensor | None = None) -> Tensor:
    """Token-mean negative log-likelihood of the retain batch (the GD/GDR retain term)."""
    return -ga_loss(logps, lengths, token_count)


# Gradient weights: ∇L = mean over D_f of w · ∇ log π_θ(y|x)
def npo_weights(logps: Tensor, ref_logps: Tensor, beta: float) -> Tensor:
    """NPO: w = 2σ(β · [log π_θ - log π_ref]) = 2π_θ^β / (π_θ^β + π_ref^β). Equals 1 at θ = θ_ref."""
    return 2.0 * torch.sigmoid(beta * (logps - ref_logps))


def simnpo_weights(
    logps: Tensor, lengths: Tensor, beta: float, margin: float = 0.0, margin_convention: str = "paper"
) -> Tensor:
    """SimNPO: w = (2/|y|) · σ((β/|y|) · log π_θ + γ). Depends on the current model only; 1/|y| removes length bias."""
    gamma = simnpo_margin(margin, beta, margin_convention)
    lengths = lengths.clamp(min=1)
    return 2.0 / lengths * torch.sigmoid(beta * logps / lengths + gamma)
