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

from simnpo.losses.constrained import DualAscent
from simnpo.losses.distribution import (
    FLATTENING_POSITIONS,
    KL_POSITIONS,
    UNDIAL_POSITIONS,
    ceu_loss,
    flattening_loss,
    kl_to_reference,
    undial_loss,
)
from simnpo.losses.inputs import (
    BATCHES,
    OUTPUTS,
    LossInputs,
    Outputs,
    Read,
    computed_outputs,
    gather_inputs,
    keeps_reference_model,
    outputs_of,
)
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
from simnpo.losses.token_weighted import satimp_loss, wga_loss
from simnpo.losses.tokens import IGNORE_INDEX, predicted_positions, sequence_logprobs, token_logprobs, token_mean

__all__ = [
    "BATCHES",
    "OUTPUTS",
    "IGNORE_INDEX",
    "KL_POSITIONS",
    "MARGIN_CONVENTIONS",
    "METHODS",
    "COMMON_DEFAULTS",
    "METHOD_DEFAULTS",
    "DualAscent",
    "Outputs",
    "computed_outputs",
    "dual_ascent",
    "Read",
    "ceu_loss",
    "flattening_loss",
    "gather_inputs",
    "keeps_reference_model",
    "method_reads",
    "outputs_of",
    "satimp_loss",
    "undial_loss",
    "wga_loss",
    "FORGET_TERMS",
    "RETAIN_TERMS",
    "LossConfig",
    "LossInputs",
    "Term",
    "dpo_loss",
    "ga_loss",
    "kl_to_reference",
    "method_family",
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


# Every method's defaults, in one place: open-unlearning's trainer configs (``configs/trainer/*.yaml``: its
# ``gamma`` is our forget_weight, ``alpha`` our retain_weight) and the papers. β of the families we had: NPO's and
# DPO's common 0.1 (NPO paper; open-unlearning), SimNPO's TOFU forget10 value 4.5 (SimNPO paper). A preset or an option
# overrides any of them; a field no entry sets takes COMMON_DEFAULTS'.
METHOD_DEFAULTS: dict[str, dict] = {
    "ga": {},
    "npo": {"beta": 0.1},
    "simnpo": {"beta": 4.5},
    "idkpo": {"beta": 0.1},
    "rmu": {},
    "undial": {"beta": 10.0, "retain_weight": 0.0},  # open-unlearning's UNDIAL.yaml: α 0, a retain term kept
    "wga": {"beta": 1.0},
    "satimp": {"beta": 5.0, "beta2": 1.0, "forget_weight": 0.1},
    "ceu": {"ignore_first_answer_tokens": 1},
    "pdu": {"dual_step_size": 1.0, "dual_update": "step", "dual_warmup_epochs": 5.0},
}
COMMON_DEFAULTS = {
    "beta": 1.0,
    "beta2": 0.0,
    "forget_weight": 1.0,
    "retain_weight": 1.0,
    "ignore_first_answer_tokens": 0,
    "dual_step_size": 1.0,
    "dual_update": "step",
    "dual_warmup_epochs": 0.0,
}
DUAL_UPDATES = ("step", "epoch")


@dataclass(frozen=True)
class LossConfig:
    """Hyperparameters of an unlearning objective L = forget_weight · L_forget + retain_weight · L_retain.

    A field left None takes the method's default (``METHOD_DEFAULTS``, by the method's family: ``npo_kl`` → ``npo``).
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
    - UNDIAL: ``beta`` is its β (the answer token's logit lowered by β); ``undial_positions`` which positions count.
    - WGA: ``beta`` (weights p^β). SatImp: ``beta`` is β1, ``beta2`` β2 (weights p^β1 (1 − p)^β2).
    - CE-U: ``ignore_first_answer_tokens`` (open-unlearning's ``ignore_first_n_answer_tokens``).
    - PDU: ``retain_weight`` is the dual variable λ's start (open-unlearning's ``alpha``), ``retain_epsilon`` the
      bound ε on the retain loss (None: (1 + ``retain_tolerance``) × the starting model's, the paper's form),
      ``dual_step_size`` η, ``dual_update`` per step or per epoch, ``dual_warmup_epochs`` before λ moves;
      ``flattening_positions`` which logits its forget loss flattens.
    """

    method: str = "simnpo"
    beta: float | None = None
    margin: float = 0.0
    margin_convention: str = "paper"
    forget_weight: float | None = None
    retain_weight: float | None = None
    kl_positions: str = "response"
    steering: float = 6.5  # RMU's c
    beta2: float | None = None  # SatImp's β2
    ignore_first_answer_tokens: int | None = None  # CE-U
    undial_positions: str = "answer"
    flattening_positions: str = "answer"  # PDU
    retain_epsilon: float | None = None  # PDU's ε
    retain_tolerance: float = 0.1  # PDU: ε = (1 + tolerance) × the starting model's retain loss when ε is not given
    dual_step_size: float | None = None  # PDU's η
    dual_update: str | None = None  # PDU: "step" or "epoch"
    dual_warmup_epochs: float | None = None  # PDU

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; use one of {', '.join(METHODS)}")
        defaults = {**COMMON_DEFAULTS, **METHOD_DEFAULTS.get(method_family(self.method), {})}
        for name, value in defaults.items():  # frozen: set once, here, from the one table of defaults
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        if not (math.isfinite(self.beta) and self.beta > 0):
            raise ValueError(f"beta must be a finite number > 0, got {self.beta}")
        non_negative = ("margin", "forget_weight", "retain_weight", "steering", "beta2", "retain_tolerance")
        for name in (*non_negative, "dual_step_size", "dual_warmup_epochs", "ignore_first_answer_tokens"):
            self._check_non_negative(name)
        if self.retain_epsilon is not None and not (math.isfinite(self.retain_epsilon) and self.retain_epsilon > 0):
            raise ValueError(
                f"retain_epsilon must be a finite number > 0 (PDU's bound on the retain loss), got "
                f"{self.retain_epsilon}"
            )
        simnpo_margin(self.margin, self.beta, self.margin_convention)  # validates the convention
        for name, allowed in (
            ("kl_positions", KL_POSITIONS),
            ("undial_positions", UNDIAL_POSITIONS),
            ("flattening_positions", FLATTENING_POSITIONS),
            ("dual_update", DUAL_UPDATES),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; use one of {', '.join(allowed)}")

    def _check_non_negative(self, name: str) -> None:
        value = getattr(self, name)
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value}")


# --------------------------------------------------------------------------------------------------------------
# Terms: a loss of LossInputs and LossConfig, and what it reads (losses/inputs.py)
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Term:
    """One term of an objective: its name, a function of (LossInputs, LossConfig), and what it reads. A forget term's
    name is the family of the methods built on it: their defaults (``METHOD_DEFAULTS``) and preset values."""

    name: str
    loss: Callable[[LossInputs, LossConfig], Tensor]
    reads: tuple[Read, ...]


def _ga(x: LossInputs, c: LossConfig) -> Tensor:
    return ga_loss(x.forget.logps, x.forget.lengths, x.forget.token_count)


def _npo(x: LossInputs, c: LossConfig) -> Tensor:
    return npo_loss(x.forget.logps, x.reference["forget"].logps, c.beta)


def _simnpo(x: LossInputs, c: LossConfig) -> Tensor:
    return simnpo_loss(x.forget.logps, x.forget.lengths, c.beta, c.margin, c.margin_convention)


def _idkpo(x: LossInputs, c: LossConfig) -> Tensor:
    ref = x.reference
    return dpo_loss(x.refusal.logps, x.forget.logps, ref["refusal"].logps, ref["forget"].logps, c.beta)


def _rmu(x: LossInputs, c: LossConfig) -> Tensor:
    return rmu_forget_loss(x.forget.hidden, x.forget.mask, x.control, x.forget.token_count)


def _undial(x: LossInputs, c: LossConfig) -> Tensor:
    f = x.forget
    return undial_loss(f.logits, x.reference["forget"].logits, f.labels, c.beta, c.undial_positions, f.token_count)


def _wga(x: LossInputs, c: LossConfig) -> Tensor:
    return wga_loss(x.forget.token_logps, x.forget.mask, c.beta, x.forget.token_count)


def _satimp(x: LossInputs, c: LossConfig) -> Tensor:
    return satimp_loss(x.forget.token_logps, x.forget.mask, c.beta, c.beta2, x.forget.token_count)


def _ceu(x: LossInputs, c: LossConfig) -> Tensor:
    return ceu_loss(x.forget.logits, x.forget.labels, c.ignore_first_answer_tokens, x.forget.token_count)


def _flattening(x: LossInputs, c: LossConfig) -> Tensor:
    return flattening_loss(x.forget.logits, x.forget.labels, c.flattening_positions, x.forget.token_count)


def _nll(x: LossInputs, c: LossConfig) -> Tensor:
    return nll_loss(x.retain.logps, x.retain.lengths, x.retain.token_count)


def _kl(x: LossInputs, c: LossConfig) -> Tensor:
    r = x.retain
    return kl_to_reference(r.logits, x.reference["retain"].logits, r.labels, c.kl_positions, r.token_count)


def _rmu_retain(x: LossInputs, c: LossConfig) -> Tensor:
    return rmu_retain_loss(x.retain.hidden, x.reference["retain"].hidden, x.retain.mask, x.retain.token_count)


def _reads(*spec: str) -> tuple[Read, ...]:
    """Reads written as "batch output" or "reference batch output"."""
    return tuple(Read(*words[-2:], reference=words[0] == "reference") for words in (s.split() for s in spec))


FORGET_TERMS: dict[str, Term] = {
    term.name: term
    for term in (
        Term("ga", _ga, _reads("forget sequence")),
        Term("npo", _npo, _reads("forget sequence", "reference forget sequence")),
        Term("simnpo", _simnpo, _reads("forget sequence")),
        Term(
            "idkpo",
            _idkpo,
            _reads("forget sequence", "reference forget sequence", "refusal sequence", "reference refusal sequence"),
        ),
        Term("rmu", _rmu, _reads("forget hidden")),
        Term("undial", _undial, _reads("forget logits", "reference forget logits")),
        Term("wga", _wga, _reads("forget tokens")),
        Term("satimp", _satimp, _reads("forget tokens")),
        Term("ceu", _ceu, _reads("forget logits")),
        Term("pdu", _flattening, _reads("forget logits")),  # logit-margin flattening, under PDU's dual variable
    )
}
RETAIN_TERMS: dict[str, Term] = {
    term.name: term
    for term in (
        Term("nll", _nll, _reads("retain sequence")),
        Term("kl", _kl, _reads("retain logits", "reference retain logits")),
        Term("activations", _rmu_retain, _reads("retain hidden", "reference retain hidden")),
    )
}


def _method(forget: str, retain: str | None = None) -> tuple[Term, Term | None]:
    return FORGET_TERMS[forget], RETAIN_TERMS[retain] if retain else None


# Method name -> (forget term, retain term or None): a plain dict, and a new method is one entry of it (and its loss
# function). idkpo follows open-unlearning's IdkDPO: DPO toward a refusal plus the retain NLL term; undial, wga, satimp
# and pdu carry open-unlearning's retain NLL term (pdu's weight is its dual variable, constrained.DualAscent), ceu none.
METHODS: dict[str, tuple[Term, Term | None]] = {
    "ga": _method("ga"),
    "graddiff": _method("ga", "nll"),
    "npo": _method("npo"),
    "npo_nll": _method("npo", "nll"),
    "npo_kl": _method("npo", "kl"),
    "simnpo": _method("simnpo"),
    "simnpo_nll": _method("simnpo", "nll"),
    "simnpo_kl": _method("simnpo", "kl"),
    "idkpo": _method("idkpo", "nll"),
    "rmu": _method("rmu", "activations"),
    "undial": _method("undial", "nll"),
    "wga": _method("wga", "nll"),
    "satimp": _method("satimp", "nll"),
    "ceu": _method("ceu"),
    "pdu": _method("pdu", "nll"),
}


def method_family(method: str) -> str:
    """The family a method takes its defaults and preset values from: its forget term's name (``npo_kl`` ->
    ``npo``)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    return METHODS[method][0].name


def method_reads(method: str) -> tuple[Read, ...]:
    """Everything a method reads (its terms' reads, each once)."""
    method_family(method)  # a known method, or one line naming the known ones
    forget, retain = METHODS[method]
    reads = forget.reads + (retain.reads if retain else ())
    return tuple(dict.fromkeys(reads))


def dual_ascent(config: LossConfig, start_retain_loss: Callable[[], float]) -> DualAscent | None:
    """PDU's dual variable for a run (None for a method without one): λ from ``retain_weight``, ε given or
    (1 + ``retain_tolerance``) × the starting model's retain loss (the paper's ε = (1 + α)·L_retain(π_ref)),
    ``start_retain_loss()`` called only then."""
    if method_family(config.method) != "pdu":
        return None
    epsilon = config.retain_epsilon
    if epsilon is None:
        epsilon = (1 + config.retain_tolerance) * start_retain_loss()
    return DualAscent(
        config.retain_weight, epsilon, config.dual_step_size, config.dual_update, config.dual_warmup_epochs
    )


def unlearning_loss(
    inputs: LossInputs, config: LossConfig, retain_weight: float | None = None
) -> tuple[Tensor, dict[str, Tensor]]:
    """L = forget_weight · L_forget + retain_weight · L_retain for ``config.method`` (``retain_weight``: a trainer's
    current one where it moves, PDU's dual variable).

    Returns the loss and its detached parts {"forget": …, "retain": …} for logging.
    """
    forget_term, retain_term = METHODS[config.method]
    forget = forget_term.loss(inputs, config)
    parts = {"forget": forget.detach()}
    loss = config.forget_weight * forget
    if retain_term is not None:
        retain = retain_term.loss(inputs, config)
        parts["retain"] = retain.detach()
        loss = loss + (config.retain_weight if retain_weight is None else retain_weight) * retain
    return loss, parts
