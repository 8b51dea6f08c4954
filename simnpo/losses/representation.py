"""RMU (Li et al. 2024, the WMDP paper): representations at one layer, not log-probabilities."""

from __future__ import annotations

import torch
from torch import Tensor

from simnpo.losses.tokens import token_mean


def rmu_control(hidden_size: int, steering: float, seed: int) -> Tensor:
    """RMU's control vector c·u: u with entries drawn uniformly from [0, 1) (seeded), normalised to unit length,
    times the steering coefficient c [hidden_size]."""
    u = torch.rand(hidden_size, generator=torch.Generator().manual_seed(seed))
    return steering * u / u.norm()


def _token_mean_sq(diff: Tensor, mask: Tensor, token_count) -> Tensor:
    per_token = diff.float().pow(2).mean(-1)  # squared error averaged over the hidden dimension [batch, seq]
    return token_mean((per_token * mask).sum(), mask.sum(), token_count)


def rmu_forget_loss(hidden: Tensor, mask: Tensor, control: Tensor, token_count=None) -> Tensor:
    """RMU's forget term: ‖h_ℓ(x_f) − c·u‖² averaged over the hidden dimension, then over the masked tokens.

    hidden: [batch, seq, d] activations at layer ℓ; mask: [batch, seq] (True where a token counts); control: [d].
    """
    return _token_mean_sq(hidden - control.to(hidden.dtype), mask, token_count)


def rmu_retain_loss(hidden: Tensor, ref_hidden: Tensor, mask: Tensor, token_count=None) -> Tensor:
    """RMU's retain term: ‖h_ℓ(x_r) − h_ℓ^frozen(x_r)‖² averaged over the hidden dimension, then over tokens."""
    return _token_mean_sq(hidden - ref_hidden.to(hidden.dtype), mask, token_count)
