"""What a method reads, as data, and the one function that turns a step's batches into exactly that.

A term of a method declares its reads: which batch (``forget``, ``retain``, ``refusal``: IdkPO's "I don't know"
answers), which output of a forward pass over it (``sequence``: log π(y|x) and |y|; ``tokens``: each answer
token's log-probability; ``logits``; ``hidden``: a layer's activations, RMU), and whether of the policy or of the
reference model (the model before unlearning). ``gather_inputs`` asks a trainer's ``forward`` for each (batch,
model) once, with every output any term reads of it, and hands the terms a ``LossInputs``. The LLM trainer and the
Markov simulator supply their own ``forward`` (how their models run their batches) and nothing else, so a method is
its loss functions and its reads: no trainer knows any method by name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from torch import Tensor

from simnpo.losses.tokens import predicted_positions, token_logprobs

BATCHES = ("forget", "retain", "refusal")
OUTPUTS = ("sequence", "tokens", "logits", "hidden")


@dataclass(frozen=True)
class Read:
    """One thing a term reads: ``output`` (one of OUTPUTS) of ``batch`` (one of BATCHES), under the reference
    model when ``reference``."""

    batch: str
    output: str
    reference: bool = False

    def __post_init__(self) -> None:
        assert self.batch in BATCHES and self.output in OUTPUTS, self


@dataclass
class Outputs:
    """One batch under one model, as far as the method reads it (None where it reads nothing of the kind).

    labels [b, T] (-100 where nothing is scored); mask [b, T-1]: the positions that predict a labelled token;
    lengths [b]: |y|; token_count: the divisor of token means (a global batch's share; None: this batch's own);
    logps [b]: log π(y|x); token_logps [b, T-1] (0 where masked); logits [b, T, V]; hidden [b, T-1, d] (the
    positions that predict a token)."""

    labels: Tensor
    mask: Tensor
    lengths: Tensor
    token_count: float | Tensor | None = None
    logps: Tensor | None = None
    token_logps: Tensor | None = None
    logits: Tensor | None = None
    hidden: Tensor | None = None


def outputs_of(
    logits: Tensor, labels: Tensor, wanted: Iterable[str], hidden: Tensor | None = None, token_count=None
) -> Outputs:
    """The ``wanted`` outputs of one forward pass (its logits, and ``hidden`` when a term reads activations)."""
    wanted = set(wanted)
    mask = predicted_positions(labels)
    out = Outputs(labels, mask, mask.sum(-1), token_count, hidden=hidden if "hidden" in wanted else None)
    if wanted & {"sequence", "tokens"}:
        token_logps, _ = token_logprobs(logits, labels)
        out.logps = token_logps.sum(-1) if "sequence" in wanted else None
        out.token_logps = token_logps if "tokens" in wanted else None
    out.logits = logits if "logits" in wanted else None
    return out


def computed_outputs(labels: Tensor, logps: Tensor, token_count=None) -> Outputs:
    """A batch's log π(y|x) computed before this step: the reference model's, once before the first step."""
    mask = predicted_positions(labels)
    return Outputs(labels, mask, mask.sum(-1), token_count, logps=logps)


@dataclass
class LossInputs:
    """What a method's loss reads: the policy's outputs on each batch it reads, the reference model's in
    ``reference`` (by batch name), and RMU's control vector c·u."""

    forget: Outputs
    retain: Outputs | None = None
    refusal: Outputs | None = None
    reference: dict[str, Outputs] = field(default_factory=dict)
    control: Tensor | None = None


def wanted_outputs(reads: Iterable[Read], reference: bool) -> dict[str, frozenset[str]]:
    """Per batch, the outputs read of the policy (or of the reference model)."""
    wanted: dict[str, set[str]] = {}
    for read in reads:
        if read.reference == reference:
            wanted.setdefault(read.batch, set()).add(read.output)
    return {batch: frozenset(outputs) for batch, outputs in wanted.items()}


def keeps_reference_model(reads: Iterable[Read]) -> bool:
    """Whether a method needs the reference model resident: it reads more of it than log π_ref(y|x), which is
    computed once before the first step (θ = θ_ref then) and needs no copy of the model."""
    return any(read.reference and read.output != "sequence" for read in reads)


def gather_inputs(
    reads: Iterable[Read], forward: Callable[[str, bool, frozenset[str]], Outputs], control: Tensor | None = None
) -> LossInputs:
    """One step's LossInputs: ``forward(batch, reference, outputs)`` is called once per batch and model read, with
    every output read of it."""
    reads = tuple(reads)
    policy = {batch: forward(batch, False, outs) for batch, outs in wanted_outputs(reads, False).items()}
    reference = {batch: forward(batch, True, outs) for batch, outs in wanted_outputs(reads, True).items()}
    assert "forget" in policy, "every method reads something of the policy on the forget batch"
    return LossInputs(policy["forget"], policy.get("retain"), policy.get("refusal"), reference, control)
