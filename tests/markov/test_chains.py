"""Chains against the construction rule of docs/markov.md, sampling against the matrices, exact quantities."""

import math

import numpy as np
import pytest

from simnpo.markov.chains import MarkovChain, block_chain, blocks, dirichlet_chain


def test_block_chain_matches_the_rule_entry_by_entry():
    chain = block_chain(10, [3, 4, 5], leak=0.2)
    for i in range(10):
        for j in range(10):
            if i in (3, 4, 5):
                expected = 0.8 / 3 if j in (3, 4, 5) else 0.2 / 7
            else:
                expected = 0.1  # leak/7 everywhere, normalised: uniform
            assert chain.transition[i, j] == pytest.approx(expected), (i, j)
    assert chain.initial == pytest.approx([0.2 / 7] * 3 + [0.8 / 3] * 3 + [0.2 / 7] * 4)


def test_paper_blocks_for_three_chains_and_generalisations():
    assert blocks(10, 3) == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]  # state 9 belongs to no block
    assert blocks(10, 5) == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    assert blocks(10, 2, block_size=3) == [[0, 1, 2], [3, 4, 5]]
    with pytest.raises(ValueError, match="need 12 states but only 10 exist"):
        blocks(10, 4, block_size=3)
    with pytest.raises(ValueError, match="11 chains need at least 11 states"):
        blocks(10, 11)


def test_sampled_transition_frequencies_converge_to_the_matrix():
    chain = block_chain(10, [0, 1, 2], 0.2)
    seqs = chain.sample(20_000, 20, np.random.default_rng(0))
    counts = np.zeros((10, 10))
    np.add.at(counts, (seqs[:, :-1], seqs[:, 1:]), 1)
    freq = counts / counts.sum(1, keepdims=True)
    assert np.abs(freq - chain.transition).max() < 0.02
    first = np.bincount(seqs[:, 0], minlength=10) / len(seqs)
    assert np.abs(first - chain.initial).max() < 0.015


def test_sampling_is_seeded():
    chain = block_chain(10, [3, 4, 5])
    a = chain.sample(50, 7, np.random.default_rng(3))
    assert a.shape == (50, 7)
    assert (a == chain.sample(50, 7, np.random.default_rng(3))).all()
    assert (a != chain.sample(50, 7, np.random.default_rng(4))).any()


def test_exact_quantities_on_a_two_state_chain():
    P = np.array([[0.9, 0.1], [0.4, 0.6]])
    chain = MarkovChain(P, np.array([0.5, 0.5]))
    mu = chain.stationary()
    assert mu == pytest.approx([0.8, 0.2])  # solves 0.1·μ0 = 0.4·μ1
    h = lambda p: -sum(x * math.log(x) for x in p)  # noqa: E731
    assert chain.entropy_rate() == pytest.approx(0.8 * h([0.9, 0.1]) + 0.2 * h([0.4, 0.6]))
    logp = chain.sequence_logprob(np.array([[0, 0, 1, 1], [1, 0, 1, 0]]))
    assert logp[0] == pytest.approx(math.log(0.5 * 0.9 * 0.1 * 0.6))
    assert logp[1] == pytest.approx(math.log(0.5 * 0.4 * 0.1 * 0.4))


def test_uniform_chain_has_entropy_rate_log_S():
    # rows outside a block are uniform; a chain of only such rows has entropy rate log S
    chain = MarkovChain(np.full((10, 10), 0.1), np.full(10, 0.1))
    assert chain.entropy_rate() == pytest.approx(math.log(10))


def test_dirichlet_chains_are_seeded_valid_and_peaked_for_small_alpha():
    a = dirichlet_chain(10, 0.1, np.random.default_rng(1))
    b = dirichlet_chain(10, 0.1, np.random.default_rng(1))
    assert np.array_equal(a.transition, b.transition)
    assert np.allclose(a.transition.sum(1), 1) and (a.transition > 0).all()
    flat = dirichlet_chain(10, 100.0, np.random.default_rng(1))
    assert a.entropy_rate() < flat.entropy_rate() < math.log(10)
    with pytest.raises(ValueError, match="concentration must be > 0"):
        dirichlet_chain(10, 0.0, np.random.default_rng(1))


@pytest.mark.parametrize("block, leak", [([], 0.2), (list(range(10)), 0.2), ([1], 0.0), ([1], 1.0)])
def test_bad_block_chains(block, leak):
    with pytest.raises(ValueError):
        block_chain(10, block, leak)
