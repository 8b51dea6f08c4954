"""Markov chains over S states: construction, seeded vectorised sampling, and exact quantities.

Everything exact is computed from the matrices, never from samples (docs/markov.md). The default construction is
the authors' block-with-leakage rule; seeded Dirichlet rows are the alternative.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class MarkovChain:
    """A chain: transition [S, S] (rows sum to 1) and initial-state distribution [S]."""

    transition: np.ndarray
    initial: np.ndarray

    def __post_init__(self) -> None:
        S = self.transition.shape[0]
        assert self.transition.shape == (S, S) and self.initial.shape == (S,)
        assert np.allclose(self.transition.sum(1), 1) and np.isclose(self.initial.sum(), 1)

    @property
    def states(self) -> int:
        return self.transition.shape[0]

    def sample(self, n: int, length: int, rng: np.random.Generator) -> np.ndarray:
        """n sequences of ``length`` states [n, length], all sequences advanced together one step at a time."""
        seqs = np.empty((n, length), dtype=np.int64)
        seqs[:, 0] = _draw(np.broadcast_to(np.cumsum(self.initial), (n, self.states)), rng)
        cumulative = np.cumsum(self.transition, axis=1)
        for t in range(1, length):
            seqs[:, t] = _draw(cumulative[seqs[:, t - 1]], rng)
        return seqs

    def stationary(self) -> np.ndarray:
        """The stationary distribution μ = μP (the left eigenvector of eigenvalue 1)."""
        values, vectors = np.linalg.eig(self.transition.T)
        mu = np.real(vectors[:, np.argmin(np.abs(values - 1))])
        return mu / mu.sum()

    def entropy_rate(self) -> float:
        """H = -Σ_i μ_i Σ_j P_ij log P_ij in nats per step."""
        P = self.transition
        row_entropy = -(P * np.log(np.where(P > 0, P, 1))).sum(1)
        return float(self.stationary() @ row_entropy)

    def sequence_logprob(self, seqs: np.ndarray) -> np.ndarray:
        """log P(s_0) + Σ_t log P(s_{t+1} | s_t) per sequence [n]."""
        seqs = np.asarray(seqs)
        logp = np.log(self.initial[seqs[:, 0]])
        return logp + np.log(self.transition[seqs[:, :-1], seqs[:, 1:]]).sum(1)


def _draw(cumulative: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One categorical draw per row of cumulative probabilities [n, S] (inverse-CDF)."""
    u = rng.random((cumulative.shape[0], 1))
    return np.minimum((u >= cumulative).sum(1), cumulative.shape[1] - 1)


def block_distribution(states: int, block: Sequence[int], leak: float) -> np.ndarray:
    """The rule of docs/markov.md for one row: (1 - leak)/|B| on the block, leak/(S - |B|) elsewhere."""
    row = np.full(states, leak / (states - len(block)))
    row[list(block)] = (1 - leak) / len(block)
    return row / row.sum()


def block_chain(states: int, block: Sequence[int], leak: float = 0.2) -> MarkovChain:
    """The authors' chain on block B: rows of states in B follow ``block_distribution``; the other rows start at
    leak/(S - |B|) everywhere and are normalised, i.e. uniform. The initial distribution follows the same rule."""
    if not 0 < len(block) < states:
        raise ValueError(f"a block must hold between 1 and {states - 1} of the {states} states, got {len(block)}")
    if not 0 < leak < 1:
        raise ValueError(f"leak must lie in (0, 1), got {leak}")
    transition = np.full((states, states), 1.0 / states)
    transition[list(block)] = block_distribution(states, block, leak)
    return MarkovChain(transition, block_distribution(states, block, leak))


def dirichlet_chain(states: int, alpha: float, rng: np.random.Generator) -> MarkovChain:
    """A chain whose rows and initial distribution are seeded Dirichlet(alpha) draws (small alpha: peaked rows)."""
    if not alpha > 0:
        raise ValueError(f"the Dirichlet concentration must be > 0, got {alpha}")
    rows = rng.dirichlet(np.full(states, alpha), size=states + 1)
    rows = np.maximum(rows, 1e-12)  # keep every log-probability finite
    rows /= rows.sum(1, keepdims=True)
    return MarkovChain(rows[:states], rows[states])


def blocks(states: int, chains: int, block_size: int | None = None) -> list[list[int]]:
    """Disjoint blocks of ``block_size`` (default S // K) consecutive states, one per chain; the rest belong to none."""
    if chains > states:
        raise ValueError(f"{chains} chains need at least {chains} states (one block each) but only {states} exist")
    size = states // chains if block_size is None else block_size
    if size < 1:
        raise ValueError(f"--block-size must be at least 1, got {size}")
    if size * chains > states:
        raise ValueError(
            f"{chains} chains with blocks of {size} states need {size * chains} states but only {states} exist; "
            "lower --chains or --block-size, or raise --states"
        )
    if size == states:
        raise ValueError("a single chain cannot use every state as its block; use at least 2 chains")
    return [list(range(k * size, (k + 1) * size)) for k in range(chains)]
