"""The one seeded batch order: passes are permutations drawn as torch's RandomSampler draws them, and each loop's
cut (within passes, across passes, topped up)."""

import pytest
import torch
from torch.utils.data import RandomSampler

from simnpo.sampling import ShuffledPasses, pass_batches, seeded, spanning_batches, topped_up_batches


def test_each_pass_is_the_permutation_random_sampler_draws_and_nothing_more_is_drawn():
    generator = seeded(4)
    passes = list(ShuffledPasses(10, generator, passes=3))
    assert len(passes) == 30 and len(ShuffledPasses(10, generator, passes=3)) == 30
    assert passes[:10] == list(RandomSampler(range(10), generator=seeded(4)))
    for k in range(3):
        assert sorted(passes[10 * k : 10 * (k + 1)]) == list(range(10))
    by_hand = seeded(4)  # three permutations in a row and no other draw between them
    assert passes == [i for _ in range(3) for i in torch.randperm(10, generator=by_hand).tolist()]
    assert generator.get_state().equal(by_hand.get_state())


def test_pass_batches_cut_each_pass_on_its_own_and_reshuffle():
    batches = pass_batches(10, 4, seeded(0), passes=None)
    first_pass = [next(batches) for _ in range(3)]
    assert [len(b) for b in first_pass] == [4, 4, 2]  # like a DataLoader: the last batch of a pass is smaller
    assert sorted(torch.cat(first_pass).tolist()) == list(range(10))
    second_pass = torch.cat([next(batches) for _ in range(3)])
    assert sorted(second_pass.tolist()) == list(range(10)) and not torch.equal(second_pass, torch.cat(first_pass))
    assert len(list(pass_batches(10, 4, seeded(0), passes=2))) == 6


def test_spanning_batches_are_full_and_cross_passes():
    batches = [b.tolist() for b in spanning_batches(10, 4, seeded(1), steps=5)]
    assert [len(b) for b in batches] == [4] * 5
    flat = sum(batches, [])
    assert sorted(flat[:10]) == list(range(10)) and len(set(flat[10:])) == 10  # the third batch spans two passes
    assert flat == list(ShuffledPasses(10, seeded(1), passes=2))
    small = [b.tolist() for b in spanning_batches(3, 8, seeded(1), steps=4)]
    assert all(sorted(b) == [0, 1, 2] for b in small)  # fewer rows than a batch: a whole pass per batch


@pytest.mark.parametrize("n, batch_size", [(10, 4), (8, 8), (3, 8)])
def test_topped_up_batches_cover_every_item_and_fill_the_last_from_the_start(n, batch_size):
    batches = topped_up_batches(n, batch_size, seeded(1))
    steps = -(-n // batch_size)
    assert [len(b) for b in batches] == [batch_size] * steps
    flat = torch.cat(batches).tolist()
    order = list(ShuffledPasses(n, seeded(1), passes=1))
    assert flat[:n] == order and flat[n:] == (order * batch_size)[: steps * batch_size - n]
