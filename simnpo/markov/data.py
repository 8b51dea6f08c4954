"""The K-chain mixture: which chains exist, their samples, and padded next-token tensors.

Chain 0 is the retain chain; chains 1..K-1 are forget chains. Each chain has its own length, sample count and a
flag saying whether it is in the pretraining data. The two cases of docs/markov.md set those flags and lengths.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from simnpo.losses import IGNORE_INDEX
from simnpo.markov.chains import MarkovChain, block_chain, blocks, dirichlet_chain

CASES = ("difficulty", "length")
CHAIN_KINDS = ("block", "dirichlet")


@dataclass(frozen=True)
class ChainSpec:
    name: str
    length: int
    samples: int
    pretrain: bool


@dataclass(frozen=True)
class DataConfig:
    """The mixture: states, construction rule and chains (docs/markov.md: S = 10, leak 0.2, 80/20 split)."""

    chains: tuple[ChainSpec, ...]
    states: int = 10
    leak: float = 0.2
    block_size: int | None = None  # default S // K
    kind: str = "block"
    dirichlet_alpha: float = 0.1
    test_fraction: float = 0.2

    def __post_init__(self) -> None:
        if len(self.chains) < 2:
            raise ValueError(f"need at least 2 chains (one retain, one forget), got {len(self.chains)}")
        if self.kind not in CHAIN_KINDS:
            raise ValueError(f"unknown chain kind {self.kind!r}; use one of {', '.join(CHAIN_KINDS)}")
        for c in self.chains:
            if c.length < 2:
                raise ValueError(f"chain {c.name} has length {c.length}; sequences need at least 2 states")
            if c.samples < 2:
                raise ValueError(f"chain {c.name} has {c.samples} samples; give at least 2 (train and test)")
        if not self.chains[0].pretrain:
            raise ValueError("the retain chain must be in the pretraining data")
        if not 0 < self.test_fraction < 1:
            raise ValueError(f"test_fraction must lie in (0, 1), got {self.test_fraction}")
        blocks(self.states, len(self.chains), self.block_size)  # validates the state budget


def case_chains(
    case: str,
    chains: int = 3,
    long: int = 20,
    short: int = 5,
    retain_samples: int = 10_000,
    forget_samples: int = 5_000,
) -> tuple[ChainSpec, ...]:
    """The chains of a case, generalised from K = 3 (docs/markov.md) to any K >= 2.

    difficulty: every chain has length ``long``; odd forget chains (forget1, forget3, …) are pretrained, even ones
      are unseen, i.e. "already unlearned".
    length: every chain is pretrained; odd forget chains have length ``long``, even ones ``short``.
    """
    if case not in CASES:
        raise ValueError(f"unknown case {case!r}; use one of {', '.join(CASES)}")
    if chains < 2:
        raise ValueError(f"--chains must be at least 2 (one retain and one forget chain), got {chains}")
    specs = [ChainSpec("retain", long, retain_samples, True)]
    for k in range(1, chains):
        odd = k % 2 == 1
        length = long if case == "difficulty" or odd else short
        specs.append(ChainSpec(f"forget{k}", length, forget_samples, case == "length" or odd))
    return tuple(specs)


def make_chains(config: DataConfig, seed: int) -> list[MarkovChain]:
    """The K chains; Dirichlet chains are seeded per chain, block chains do not depend on the seed."""
    if config.kind == "block":
        return [
            block_chain(config.states, b, config.leak)
            for b in blocks(config.states, len(config.chains), config.block_size)
        ]
    return [
        dirichlet_chain(config.states, config.dirichlet_alpha, np.random.default_rng([seed, k, 1]))
        for k in range(len(config.chains))
    ]


@dataclass
class ChainData:
    """Train and test sequences of one chain, as numpy arrays [n, length]."""

    spec: ChainSpec
    chain: MarkovChain
    train: np.ndarray
    test: np.ndarray


def sample_data(config: DataConfig, seed: int) -> list[ChainData]:
    """Sample every chain with its own generator, so a chain's data does not depend on the other chains."""
    out = []
    for k, (spec, chain) in enumerate(zip(config.chains, make_chains(config, seed))):
        seqs = chain.sample(spec.samples, spec.length, np.random.default_rng([seed, k]))
        n_test = max(1, round(spec.samples * config.test_fraction))
        out.append(ChainData(spec, chain, seqs[: spec.samples - n_test], seqs[spec.samples - n_test :]))
    return out


@dataclass
class TokenBatch:
    """Right-padded sequences as model inputs and labels in the Hugging Face convention.

    input_ids [n, T]; labels [n, T] with -100 at position 0 (nothing predicts the first state) and on padding;
    chain [n] the index of the generating chain.
    """

    input_ids: Tensor
    labels: Tensor
    chain: Tensor

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def __getitem__(self, index) -> TokenBatch:
        return TokenBatch(self.input_ids[index], self.labels[index], self.chain[index])

    def to(self, device) -> TokenBatch:
        return TokenBatch(self.input_ids.to(device), self.labels.to(device), self.chain.to(device))


def to_tokens(arrays: list[np.ndarray], chain_ids: list[int]) -> TokenBatch:
    """Concatenate sequence arrays of possibly different lengths into one padded TokenBatch."""
    width = max(a.shape[1] for a in arrays)
    n = sum(a.shape[0] for a in arrays)
    ids = torch.zeros(n, width, dtype=torch.long)
    labels = torch.full((n, width), IGNORE_INDEX, dtype=torch.long)
    chain = torch.empty(n, dtype=torch.long)
    row = 0
    for a, k in zip(arrays, chain_ids):
        m, length = a.shape
        ids[row : row + m, :length] = torch.from_numpy(a)
        labels[row : row + m, 1:length] = torch.from_numpy(a[:, 1:])
        chain[row : row + m] = k
        row += m
    return TokenBatch(ids, labels, chain)


def split_tokens(data: list[ChainData], split: str, chains: list[int]) -> TokenBatch:
    return to_tokens([getattr(data[k], split) for k in chains], chains)
