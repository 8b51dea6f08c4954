"""The unlearning losses of the SimNPO paper (arXiv 2410.07163) and its baselines, as pure functions of model outputs.

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

from torch import Tensor

from simnpo.losses.distribution import KL_POSITIONS, kl_to_reference
from simnpo.losses.representation import rmu_control, rmu_forget_loss, rmu_retain_loss
from simnpo.losses.sequence import (
    MARGIN_CONVENTIONS,
    dpo_loss,
    ga_loss,
    nll_loss,
    npo_loss,
    npo_weights,
    simnpo_loss,
    simnpo_margin,
    simnpo_weights,
)
from simnpo.losses.tokens import IGNORE_INDEX, predicted_positions, sequence_logprobs, token_logprobs, token_mean

__all__ = [
    "IGNORE_INDEX",
    "KL_POSITIONS",
    "MARGIN_CONVENTIONS",
    "METHODS",
    "DEFAULT_BETA",
    "FORGET_TERMS",
    "RETAIN_TERMS",
    "LossConfig",
    "LossInputs",
    "Term",
    "dpo_loss",
    "ga_loss",
    "kl_to_reference",
    "method_family",
    "method_needs",
    "nll_loss",
    "npo_loss",
    "npo_weights",
    "predicted_positions",
    "rmu_control",
    "rmu_forget_loss",
    "rmu_retain_loss",
    "sequence_logprobs",
    "simnpo_loss",
    "simnpo_margin",
    "simnpo_weights",
    "token_logprobs",
    "token_mean",
    "unlearning_loss",
]


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
