"""The unlearning losses of the SimNPO paper (arXiv 2410.07163), as pure functions of per-sequence tensors.

Conventions (docs/conventions.md):
- ``logps`` is log π(y|x): the *sum* over response tokens of each token's log-probability. Prompt and padding
  positions carry the label -100 and count for nothing.
- ``lengths`` is |y|: the number of label positions that are not -100 *after* the one-position shift between
  logits and labels, i.e. exactly the positions that were summed (no off-by-one, unlike open-unlearning).
- Forget losses are minimised; each returns the batch loss (a scalar). Gradient ascent, the NLL retain term and
  the KL term are token means over the whole batch (as Hugging Face's loss); the preference losses are means over
  sequences. A token mean divides by ``token_count`` when given: a trainer that splits one global batch into k
  equal micro-batches (accumulation steps × processes) passes N/k, N the global batch's token count, so the mean
  of the k micro-batch losses is the global batch's token mean for any split.

This module imports nothing of ours: the Markov simulator and the LLM trainer both call it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

IGNORE_INDEX = -100
MARGIN_CONVENTIONS = ("paper", "authors_code")
KL_POSITIONS = ("response", "all")


# --------------------------------------------------------------------------------------------------------------
# Log-probabilities
# --------------------------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------------------------
# Forget losses
# --------------------------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------------------------
# Retain terms
# --------------------------------------------------------------------------------------------------------------
def nll_loss(logps: Tensor, lengths: Tensor, token_count: float | Tensor | None = None) -> Tensor:
    """Token-mean negative log-likelihood of the retain batch (the GD/GDR retain term)."""
    return -ga_loss(logps, lengths, token_count)


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


# --------------------------------------------------------------------------------------------------------------
# RMU (Li et al. 2024, the WMDP paper): representations at one layer, not log-probabilities
# --------------------------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------------------------
# Gradient weights: ∇L = mean over D_f of w · ∇ log π_θ(y|x)
# --------------------------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------------------------
# Named methods: a forget loss plus an optional retain term
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LossConfig:
    """Hyperparameters of an unlearning objective L = forget_weight · L_forget + retain_weight · L_retain.

    Names cannot be confused: ``margin`` is SimNPO's γ (in ``margin_convention``), ``forget_weight`` and
    ``retain_weight`` multiply the two terms. Mapping to published settings (docs/conventions.md):
    - SimNPO TOFU forget05: beta 2.5, forget_weight 0.1375, retain_weight 1, margin 0; forget10: beta 4.5,
      forget_weight 0.125. The authors' model cards call 0.1375/0.125 "λ" (as if a retain weight), but their
      code multiplies it onto the forget loss; open-unlearning names it ``gamma``, the retain weight ``alpha``
      and the margin ``delta``.
    - NPO, open-unlearning default: beta 0.1, forget_weight 1, retain_weight 1.
    - SimNPO MUSE-News: beta 0.7, forget_weight 1, retain_weight 0.1. WMDP: beta 5.5, forget_weight 5.0.
    - The authors' code's margin γ' is ``margin_convention="authors_code"``; γ_paper = β·γ'.
    - RMU (WMDP repository): ``steering`` c = 6.5, ``retain_weight`` α = 1200 (open-unlearning: c = 2, α = 1).
    """

    method: str = "simnpo"
    beta: float | None = None  # None: the method's default, DEFAULT_BETA of its family
    margin: float = 0.0
    margin_convention: str = "paper"
    forget_weight: float = 1.0
    retain_weight: float = 1.0
    kl_positions: str = "response"
    steering: float = 6.5  # RMU's c

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; use one of {', '.join(METHODS)}")
        if self.beta is None:  # frozen: set once, here, from the one table of defaults
            object.__setattr__(self, "beta", DEFAULT_BETA[method_family(self.method)])
        if not (math.isfinite(self.beta) and self.beta > 0):
            raise ValueError(f"beta must be a finite number > 0, got {self.beta}")
        for name in ("margin", "forget_weight", "retain_weight", "steering"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        simnpo_margin(self.margin, self.beta, self.margin_convention)  # validates the convention
        if self.kl_positions not in KL_POSITIONS:
            raise ValueError(f"unknown kl_positions {self.kl_positions!r}; use one of {', '.join(KL_POSITIONS)}")


@dataclass
class LossInputs:
    """What a method's loss reads. Fill in what ``method_needs(method)`` names; leave the rest None.

    forget_logps, forget_lengths: log π_θ(y|x) and |y| on the forget batch.
    ref_forget_logps: log π_ref(y|x) on the forget batch (NPO, IdkPO); may be precomputed once.
    retain_logps, retain_lengths: on the retain batch (NLL retain term).
    retain_logits, ref_retain_logits, retain_labels: the retain batch's logits under θ and θ_ref (KL term).
    idk_logps, ref_idk_logps: the refusal answers' log-probabilities (IdkPO's y_w).
    forget_hidden, forget_mask, control: RMU's forget activations at its layer, the tokens that count, and c·u.
    retain_hidden, ref_retain_hidden, retain_mask: RMU's retain activations under θ and the frozen θ_ref.
    forget_token_count, retain_token_count: the divisors of the token-mean terms (GA and RMU on forget; NLL, KL and
    RMU on retain); None: the batch's own token count.
    """

    forget_logps: Tensor
    forget_lengths: Tensor
    ref_forget_logps: Tensor | None = None
    retain_logps: Tensor | None = None
    retain_lengths: Tensor | None = None
    retain_logits: Tensor | None = None
    ref_retain_logits: Tensor | None = None
    retain_labels: Tensor | None = None
    idk_logps: Tensor | None = None
    ref_idk_logps: Tensor | None = None
    forget_hidden: Tensor | None = None
    forget_mask: Tensor | None = None
    control: Tensor | None = None
    retain_hidden: Tensor | None = None
    ref_retain_hidden: Tensor | None = None
    retain_mask: Tensor | None = None
    forget_token_count: float | Tensor | None = None
    retain_token_count: float | Tensor | None = None


def _ga(x: LossInputs, c: LossConfig) -> Tensor:
    return ga_loss(x.forget_logps, x.forget_lengths, x.forget_token_count)


def _npo(x: LossInputs, c: LossConfig) -> Tensor:
    return npo_loss(x.forget_logps, x.ref_forget_logps, c.beta)


def _simnpo(x: LossInputs, c: LossConfig) -> Tensor:
    return simnpo_loss(x.forget_logps, x.forget_lengths, c.beta, c.margin, c.margin_convention)


def _idkpo(x: LossInputs, c: LossConfig) -> Tensor:
    return dpo_loss(x.idk_logps, x.forget_logps, x.ref_idk_logps, x.ref_forget_logps, c.beta)


def _nll(x: LossInputs, c: LossConfig) -> Tensor:
    return nll_loss(x.retain_logps, x.retain_lengths, x.retain_token_count)


def _kl(x: LossInputs, c: LossConfig) -> Tensor:
    return kl_to_reference(x.retain_logits, x.ref_retain_logits, x.retain_labels, c.kl_positions, x.retain_token_count)


def _rmu(x: LossInputs, c: LossConfig) -> Tensor:
    return rmu_forget_loss(x.forget_hidden, x.forget_mask, x.control, x.forget_token_count)


def _rmu_retain(x: LossInputs, c: LossConfig) -> Tensor:
    return rmu_retain_loss(x.retain_hidden, x.ref_retain_hidden, x.retain_mask, x.retain_token_count)


@dataclass(frozen=True)
class Term:
    """One term of an objective: a function of (LossInputs, LossConfig) and the LossInputs fields it reads."""

    loss: Callable[[LossInputs, LossConfig], Tensor]
    needs: tuple[str, ...]


FORGET_TERMS: dict[str, Term] = {
    "ga": Term(_ga, ("forget_logps", "forget_lengths")),
    "npo": Term(_npo, ("forget_logps", "ref_forget_logps")),
    "simnpo": Term(_simnpo, ("forget_logps", "forget_lengths")),
    "idkpo": Term(_idkpo, ("forget_logps", "ref_forget_logps", "idk_logps", "ref_idk_logps")),
    "rmu": Term(_rmu, ("forget_hidden", "forget_mask", "control")),
}
RETAIN_TERMS: dict[str, Term] = {
    "nll": Term(_nll, ("retain_logps", "retain_lengths")),
    "kl": Term(_kl, ("retain_logits", "ref_retain_logits", "retain_labels")),
    "activations": Term(_rmu_retain, ("retain_hidden", "ref_retain_hidden", "retain_mask")),
}

# Method name -> (forget term, retain term or None). idkpo follows open-unlearning's IdkDPO: DPO toward a
# refusal plus the retain NLL term.
METHODS: dict[str, tuple[str, str | None]] = {
    "ga": ("ga", None),
    "graddiff": ("ga", "nll"),
    "npo": ("npo", None),
    "npo_nll": ("npo", "nll"),
    "npo_kl": ("npo", "kl"),
    "simnpo": ("simnpo", None),
    "simnpo_nll": ("simnpo", "nll"),
    "simnpo_kl": ("simnpo", "kl"),
    "idkpo": ("idkpo", "nll"),
    "rmu": ("rmu", "activations"),
}


# β when none is given, per method family: NPO's and DPO's common 0.1 (NPO paper; open-unlearning), SimNPO's TOFU
# forget10 value 4.5 (SimNPO paper). Gradient ascent and RMU have no β.
DEFAULT_BETA = {"ga": 1.0, "npo": 0.1, "simnpo": 4.5, "idkpo": 0.1, "rmu": 1.0}


def method_family(method: str) -> str:
    """The forget term a method is built on: ga, npo, simnpo or idkpo (``npo_kl`` -> ``npo``)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    return METHODS[method][0]


def method_needs(method: str) -> tuple[str, ...]:
    """The LossInputs fields a method reads; a field starting with "ref_" needs a reference model's outputs."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    forget, retain = METHODS[method]
    needs = FORGET_TERMS[forget].needs + (RETAIN_TERMS[retain].needs if retain else ())
    return tuple(dict.fromkeys(needs))


def unlearning_loss(inputs: LossInputs, config: LossConfig) -> tuple[Tensor, dict[str, Tensor]]:
    """L = forget_weight · L_forget + retain_weight · L_retain for ``config.method``.

    Returns the loss and its detached parts {"forget": …, "retain": …} for logging.
    """
    missing = [name for name in method_needs(config.method) if getattr(inputs, name) is None]
    if missing:
        raise ValueError(f"method {config.method!r} needs {', '.join(missing)} in LossInputs")
    forget_term, retain_term = METHODS[config.method]
    forget = FORGET_TERMS[forget_term].loss(inputs, config)
    parts = {"forget": forget.detach()}
    loss = config.forget_weight * forget
    if retain_term is not None:
        retain = RETAIN_TERMS[retain_term].loss(inputs, config)
        parts["retain"] = retain.detach()
        loss = loss + config.retain_weight * retain
    return loss, parts
