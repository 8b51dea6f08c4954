"""KL metrics against hand-computed values and the true chains."""

import math

import numpy as np
import pytest
import torch

from simnpo.markov.chains import block_chain
from simnpo.markov.data import to_tokens
from simnpo.markov.metrics import exact_chain_kl, kl_from_rows, kl_to_chain, kl_to_model


def test_a_model_that_outputs_the_true_rows_scores_kl_zero():
    chain = block_chain(10, [3, 4, 5])
    batch = to_tokens([chain.sample(30, 12, np.random.default_rng(0))], [1])
    logits = torch.log(torch.as_tensor(chain.transition, dtype=torch.float32))[batch.input_ids] + 5.0
    assert kl_to_chain(logits, batch.input_ids, batch.labels, chain.transition) == pytest.approx(0.0, abs=1e-6)
    assert kl_to_model(logits, logits, batch.labels) == pytest.approx(0.0, abs=1e-6)
    uniform = torch.zeros_like(logits)
    assert kl_to_chain(uniform, batch.input_ids, batch.labels, chain.transition) > 0.1


def test_kl_from_rows_hand_computed_and_masked():
    p = torch.tensor([[[0.5, 0.5], [0.9, 0.1], [1.0, 0.0]]])
    q = torch.tensor([[[0.5, 0.5], [0.6, 0.4], [0.3, 0.7]]])
    labels = torch.tensor([[-100, 1, 1]])  # positions 0 and 1 are scored; the last position predicts nothing
    total, count = kl_from_rows(p, q.log(), labels)
    assert count.item() == 2
    assert total.item() == pytest.approx(0.9 * math.log(0.9 / 0.6) + 0.1 * math.log(0.1 / 0.4), rel=1e-5)


def test_exact_chain_kl_of_a_retain_only_model():
    retain, forget = block_chain(10, [0, 1, 2]), block_chain(10, [3, 4, 5])
    batch = to_tokens([forget.sample(2000, 20, np.random.default_rng(1))], [1])
    value = exact_chain_kl(batch.input_ids, batch.labels, forget.transition, retain.transition)
    # at a forget-block state the retain chain is uniform: KL(forget row ‖ uniform) = log 10 - H(forget row)
    in_block = math.log(10) + 3 * (0.8 / 3) * math.log(0.8 / 3) + 7 * (0.2 / 7) * math.log(0.2 / 7)
    stationary = forget.stationary()
    assert 0 < value < in_block + 1e-6
    # mostly in-block: the visited in-block fraction approaches the stationary mass of the block
    assert value == pytest.approx(in_block * stationary[3:6].sum() + _out_of_block(forget, retain), rel=0.05)


def _out_of_block(forget, retain):
    mu = forget.stationary()
    total = 0.0
    for s in [0, 1, 2, 6, 7, 8, 9]:
        p, q = forget.transition[s], retain.transition[s]
        total += mu[s] * float((p * np.log(p / q)).sum())
    return total
