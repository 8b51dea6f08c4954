"""Membership-inference attacks as open-unlearning computes them (``src/evals/metrics/mia/``), as pure functions of a
model's outputs: each gives every item a score, higher for an item that looks *less* like training data (the
loss's sign), and an attack is the AUC of telling the forget items (label 0) from the holdout items (label 1) by
that score (``mia/utils.py:mia_auc``): 1 when the forget items are far more likely than the holdout ones, 0.5 when
the model cannot tell them apart.

The scored tokens are open-unlearning's ``tokenwise_logprobs``': every labelled answer token but the last (its EOS).
- LOSS (Yeom et al. 2018): the answer's mean NLL.
- ZLib (Carlini et al. 2021): the mean NLL over the zlib-compressed length (bytes) of the answer's decoded text.
- Min-K% (Shi et al. 2024, arXiv 2310.16789): −mean of the k·n lowest token log-probabilities (at least one; k 0.4
  in open-unlearning's TOFU configs).
- Min-K%++ (Zhang et al. 2024, arXiv 2404.02936): the same over (log p(y_t) − μ_t)/σ_t, μ_t and σ_t² the mean and
  variance of log p under the model's next-token distribution (σ_t² clamped at 1e-6).
- GradNorm (Wang et al. 2024, arXiv 2402.17012): the mean over parameter tensors of the p-norm of the gradient of the
  item's mean NLL.
- Reference (Carlini et al. 2021): the mean NLL minus a reference model's.

PrivLeak (MUSE, Shi et al. 2024): (AUC_ref − AUC)/(1 − AUC_ref)·100 in open-unlearning's ``privacy.privleak`` form,
((1 − AUC) − (1 − AUC_ref))/((1 − AUC_ref) + 1e-10)·100; AUC_ref the retain model's AUC (0.5 when not given).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import Tensor

from simnpo.losses import token_logprobs

MIN_K = 0.4  # open-unlearning's configs/eval/tofu_metrics/mia_min_k*.yaml
GRADNORM_P = 2.0  # its mia_gradnorm.yaml
# our attack names -> open-unlearning's result keys (src/evals/metrics/mia/__init__.py)
RESULT_KEYS = {
    "loss": "mia_loss",
    "zlib": "mia_zlib",
    "min_k": "mia_min_k",
    "min_k++": "mia_min_k_plus_plus",
    "gradnorm": "mia_gradnorm",
    "reference": "mia_reference",
}
SIGMA_FLOOR = 1e-6  # Min-K%++'s clamp of σ², as open-unlearning's min_k_plus_plus.py


def without_last(mask: Tensor) -> Tensor:
    """``mask`` [b, T-1] with each row's last position left out (the answer's EOS, which open-unlearning's
    ``tokenwise_logprobs`` and ``tokenwise_vocab_logprobs`` drop)."""
    return mask & (mask.cumsum(-1) < mask.sum(-1, keepdim=True))


def scored_tokens(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Each labelled token's log-probability [b, T-1] (float32 or wider) and the mask [b, T-1] of the scored ones:
    every labelled token but each row's last."""
    logps, mask = token_logprobs(logits, labels)
    return logps, without_last(mask)


def next_token_moments(logits: Tensor) -> tuple[Tensor, Tensor]:
    """μ and σ² of log p(v) under p = softmax(logits) at every position, in float32 or wider: [b, T-1] each
    (aligned with ``scored_tokens``)."""
    logp = torch.log_softmax(logits[:, :-1].to(torch.promote_types(logits.dtype, torch.float32)), -1)
    p = logp.exp()
    mu = (p * logp).sum(-1)
    # Σ p (log p − μ)², open-unlearning's Σ p (log p)² − μ² without its float32 cancellation (1e-5 relative here)
    return mu, (p * (logp - mu[..., None]).square()).sum(-1)


def min_k_score(values: Sequence[float], k: float = MIN_K) -> float:
    """Min-K% of one text: −mean of its ⌊k·n⌋ lowest token log-probabilities, as MUSE's ``privleak.inference`` and
    open-unlearning's ``min_k.py`` take ``int(len(values) * k)``, at least one (below 1/k tokens MUSE's count is 0
    and its score NaN; open-unlearning takes one, as we do)."""
    ordered = np.sort(np.asarray(values, dtype=np.float64))
    return float(-ordered[: max(1, math.floor(k * len(ordered)))].mean())


def min_k_scores(values: Tensor, mask: Tensor, k: float = MIN_K) -> Tensor:
    """``min_k_score`` of each row's masked-in ``values`` [b] (0 for a row with none, as open-unlearning returns)."""
    if not 0 < k <= 1:
        raise ValueError(f"k must be in (0, 1], got {k}")
    rows = [v[m].double().cpu() for v, m in zip(values, mask)]
    return torch.tensor([min_k_score(r, k) if r.numel() else 0.0 for r in rows], dtype=torch.float64)


def min_k_plus_plus_scores(logps: Tensor, mu: Tensor, sigma2: Tensor, mask: Tensor, k: float = MIN_K) -> Tensor:
    """Min-K% over (log p(y_t) − μ_t)/σ_t [b]."""
    return min_k_scores((logps - mu) / sigma2.clamp(min=SIGMA_FLOOR).sqrt(), mask, k)


def mean_nll(logps: Tensor, mask: Tensor) -> Tensor:
    """Each row's mean NLL over its scored tokens [b] (the LOSS attack's score, and GradNorm's loss)."""
    return -(logps * mask).sum(-1) / mask.sum(-1).clamp(min=1)


def zlib_scores(losses: Tensor | list[float], texts: list[str]) -> Tensor:
    """Mean NLL over the zlib-compressed length in bytes of each answer's text (UTF-8) [b]."""
    sizes = torch.tensor([len(zlib.compress(text.encode("utf-8"))) for text in texts], dtype=torch.float64)
    return torch.as_tensor(losses, dtype=torch.float64) / sizes


def reference_scores(losses: Tensor, reference_losses: Tensor) -> Tensor:
    """The target's mean NLL minus the reference model's [b]."""
    return losses.double() - reference_losses.double()


def gradnorm_score(model, loss: Tensor, p: float = GRADNORM_P) -> float:
    """The mean over the model's parameter tensors of the p-norm of ∇ ``loss`` (one item's mean NLL); the model's
    gradients are cleared before and after."""
    if p not in (1, 2, float("inf")):
        raise ValueError(f"GradNorm's p must be 1, 2 or inf, got {p}")
    model.zero_grad(set_to_none=True)
    loss.backward()
    norms = [param.grad.detach().norm(p=p) for param in model.parameters() if param.grad is not None]
    model.zero_grad(set_to_none=True)
    return torch.stack(norms).mean().item()


def gradnorm_scores(model, batches: Iterable, p: float = GRADNORM_P, last_token: bool = False) -> list[float]:
    """``gradnorm_score`` of each one-item batch (``input_ids``, ``attention_mask``, ``labels``) over its scored
    tokens (an answer's without its EOS; ``last_token``: every labelled token, as a whole text is scored): a forward
    and a backward pass per item, as open-unlearning loops over a batch's items. The model stays in eval mode where
    open-unlearning switches to train mode, which differs only for a model with dropout."""
    device = next(model.parameters()).device
    out = []
    with torch.enable_grad():  # evaluation runs under no_grad
        for batch in batches:
            ids, attention = batch.input_ids.to(device), batch.attention_mask.to(device)
            logits, labels = model(input_ids=ids, attention_mask=attention).logits, batch.labels.to(device)
            logps, mask = token_logprobs(logits, labels) if last_token else scored_tokens(logits, labels)
            out.append(gradnorm_score(model, mean_nll(logps, mask)[0], p))
    return out


def mia_auc(forget_scores, holdout_scores) -> float:
    """The AUC of telling forget items (label 0) from holdout items (label 1) by score (``mia/utils.py``)."""
    scores = np.concatenate([np.asarray(forget_scores, dtype=np.float64), np.asarray(holdout_scores, np.float64)])
    labels = np.array([0] * len(forget_scores) + [1] * len(holdout_scores))
    return float(roc_auc_score(labels, scores))


def privleak(auc: float, reference_auc: float = 0.5) -> float:
    """PrivLeak in percent: 0 for the retain model against itself, negative while the forget set still leaks."""
    return ((1 - auc) - (1 - reference_auc)) / ((1 - reference_auc) + 1e-10) * 100


def check_attacks(attacks: tuple[str, ...]) -> None:
    for name in attacks:
        if name not in RESULT_KEYS:
            raise ValueError(f"unknown attack {name!r}; use one of {', '.join(RESULT_KEYS)}")


def _scores(values: list[float]) -> dict:
    return {
        "agg_value": float(sum(values) / len(values)),
        "value_by_index": {str(i): {"score": v} for i, v in enumerate(values)},
    }


def attack_results(forget: dict[str, list[float]], holdout: dict[str, list[float]]) -> dict:
    """``mia_ATTACK`` entries from each attack's per-item scores of the forget and the holdout items."""
    out = {}
    for name in forget:
        auc = mia_auc(forget[name], holdout[name])
        out[RESULT_KEYS[name]] = {
            "forget": _scores(forget[name]),
            "holdout": _scores(holdout[name]),
            "auc": auc,
            "agg_value": auc,
        }
    return out
