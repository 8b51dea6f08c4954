"""Token-weighted gradient ascent: every answer token's log-probability pushed down with a weight of its own
probability, held constant (no gradient through the weight). With weight 1 this is gradient ascent.

- WGA (weighted gradient ascent; Wang et al. 2025, "Rethinking LLM Unlearning Objectives: A Gradient Perspective
  and Go Beyond"): w_t = p_t^β, so tokens the model already finds unlikely stop being pushed.
- SatImp (Yang et al. 2025, token saturation and importance): w_t = p_t^β1 · (1 − p_t)^β2: the saturation factor
  p^β1 as WGA's, the importance factor (1 − p)^β2 easing the tokens the model is sure of.

Both are token means over the batch's answer tokens, as open-unlearning's ``compute_wga_loss`` and
``compute_satimp_loss`` take them (``token_count``: the divisor of a global batch's share, package docstring).
"""

from __future__ import annotations

from torch import Tensor

from simnpo.losses.tokens import token_mean


def weighted_ascent_loss(token_logps: Tensor, mask: Tensor, weights: Tensor, token_count=None) -> Tensor:
    """L = mean over answer tokens of sg(w_t) · log p_t (minimised: log p_t pushed down with weight w_t).

    token_logps, mask, weights: [batch, seq - 1] (``token_logprobs``' layout; weights already detached)."""
    return token_mean((weights * token_logps * mask).sum(), mask.sum(), token_count)


def wga_loss(token_logps: Tensor, mask: Tensor, beta: float, token_count=None) -> Tensor:
    """WGA: w_t = p_t^β = exp(β · log p_t), detached. β = 0 is gradient ascent."""
    return weighted_ascent_loss(token_logps, mask, (beta * token_logps.detach()).exp(), token_count)


def satimp_loss(token_logps: Tensor, mask: Tensor, beta1: float, beta2: float, token_count=None) -> Tensor:
    """SatImp: w_t = p_t^β1 · (1 − p_t)^β2, detached. β2 = 0 is WGA with β = β1."""
    p = token_logps.detach().exp()
    return weighted_ascent_loss(token_logps, mask, p**beta1 * (1 - p) ** beta2, token_count)
