"""The one seeded batch order of every training loop: the LLM trainer, fine-tuning the built-in models, relearning and
the Markov experiments.

``ShuffledPasses`` is a torch sampler: seeded shuffled passes over ``n`` rows, each one ``torch.randperm`` of the
generator it is given, as torch's ``RandomSampler`` draws a pass; unlike it, nothing is drawn beyond the passes
(``RandomSampler`` draws an unused permutation as each pass ends, which would shift every later pass of a shared
generator). The loops differ only in how they cut it, each as its recipe does:

- ``pass_batches``: each pass cut into batches, the last of a pass possibly short (a DataLoader's epochs):
  fine-tuning, Markov pretraining and Markov unlearning (the authors' shuffled DataLoaders);
- ``spanning_batches``: full batches across passes (relearning, counted in steps);
- ``topped_up_batches``: one pass, the last batch topped up from the start of that pass (the LLM trainer, whose
  global batches are all of one size so that processes and accumulation steps share them out evenly).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import torch
from torch.utils.data import BatchSampler, Sampler


class ShuffledPasses(Sampler[int]):
    """Row indices in seeded shuffled passes over ``n`` rows: ``passes`` of them, or without end (``None``)."""

    def __init__(self, n: int, generator: torch.Generator, passes: int | None = None):
        assert n > 0, "no rows to draw from"
        self.n, self.generator, self.passes = n, generator, passes

    def __iter__(self) -> Iterator[int]:
        for _ in itertools.count() if self.passes is None else range(self.passes):
            yield from torch.randperm(self.n, generator=self.generator).tolist()

    def __len__(self) -> int:
        assert self.passes is not None, "an endless sampler has no length"
        return self.n * self.passes


def seeded(seed: int) -> torch.Generator:
    """A CPU generator seeded with ``seed`` (batch orders are drawn on the CPU, the same on every device)."""
    return torch.Generator().manual_seed(seed)


def pass_batches(n: int, batch_size: int, generator: torch.Generator, passes: int | None = 1) -> Iterator[torch.Tensor]:
    """Batches of row indices [≤ batch_size], pass after pass (``passes``; ``None``: without end), each pass cut on
    its own so that its last batch may be short."""
    for _ in itertools.count() if passes is None else range(passes):
        for batch in BatchSampler(ShuffledPasses(n, generator, passes=1), batch_size, drop_last=False):
            yield torch.tensor(batch)


def spanning_batches(n: int, batch_size: int, generator: torch.Generator, steps: int) -> Iterator[torch.Tensor]:
    """``steps`` full batches of row indices [min(batch_size, n)] from one stream of passes: a batch may span two
    passes; with fewer rows than a batch, each batch is one whole pass."""
    batches = BatchSampler(ShuffledPasses(n, generator), min(batch_size, n), drop_last=True)
    for batch in itertools.islice(batches, steps):
        yield torch.tensor(batch)


def topped_up_batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """One pass cut into ⌈n / batch_size⌉ batches [batch_size], the last topped up from the start of the pass (the
    pass repeated when it is shorter than half a batch)."""
    order = torch.tensor(list(ShuffledPasses(n, generator, passes=1)))
    steps = -(-n // batch_size)
    return list(order.repeat(-(-steps * batch_size // n))[: steps * batch_size].view(steps, batch_size))
