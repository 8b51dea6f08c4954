"""The K-chain cases and the padded next-token tensors."""

import numpy as np
import pytest
import torch

from simnpo.markov.data import ChainSpec, DataConfig, case_chains, sample_data, split_tokens, to_tokens


def test_published_cases_for_three_chains():
    d = case_chains("difficulty")
    assert [(c.name, c.length, c.samples, c.pretrain) for c in d] == [
        ("retain", 20, 10_000, True),
        ("forget1", 20, 5_000, True),
        ("forget2", 20, 5_000, False),
    ]
    l = case_chains("length")
    assert [(c.name, c.length, c.pretrain) for c in l] == [
        ("retain", 20, True),
        ("forget1", 20, True),
        ("forget2", 5, True),
    ]


def test_cases_generalise_to_k_chains():
    five = case_chains("length", 5)
    assert [c.length for c in five] == [20, 20, 5, 20, 5]
    assert [c.pretrain for c in case_chains("difficulty", 5)] == [True, True, False, True, False]
    assert len(case_chains("difficulty", 2)) == 2
    with pytest.raises(ValueError, match="at least 2"):
        case_chains("length", 1)
    with pytest.raises(ValueError, match="unknown case"):
        case_chains("width")


def test_to_tokens_labels_skip_the_first_state_and_padding():
    batch = to_tokens([np.array([[1, 2, 3, 4]]), np.array([[5, 6]])], [0, 2])
    assert batch.input_ids.tolist() == [[1, 2, 3, 4], [5, 6, 0, 0]]
    assert batch.labels.tolist() == [[-100, 2, 3, 4], [-100, 6, -100, -100]]
    assert batch.chain.tolist() == [0, 2]
    # |y| counted after the shift is length - 1
    assert (batch.labels[:, 1:] != -100).sum(1).tolist() == [3, 1]


def test_sample_data_split_and_independence_of_chains():
    cfg = DataConfig(case_chains("length", 3, retain_samples=100, forget_samples=50))
    data = sample_data(cfg, seed=7)
    assert [d.train.shape for d in data] == [(80, 20), (40, 20), (40, 5)]
    assert [d.test.shape for d in data] == [(20, 20), (10, 20), (10, 5)]
    # the retain chain's data do not depend on the other chains (so the retrained model is shared by cases)
    other = sample_data(DataConfig(case_chains("difficulty", 3, retain_samples=100, forget_samples=50)), seed=7)
    assert np.array_equal(data[0].train, other[0].train)
    tokens = split_tokens(data, "test", [0, 2])
    assert len(tokens) == 30 and tokens.input_ids.shape[1] == 20
    assert torch.equal(tokens.chain, torch.tensor([0] * 20 + [2] * 10))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"chains": (ChainSpec("retain", 20, 10, True),)}, "at least 2 chains"),
        ({"chains": (ChainSpec("retain", 20, 10, True), ChainSpec("f", 0, 10, True))}, "has length 0"),
        ({"chains": (ChainSpec("retain", 20, 10, True), ChainSpec("f", 5, 1, True))}, "1 samples"),
        ({"chains": case_chains("length"), "states": 5, "block_size": 2}, "need 6 states but only 5 exist"),
        ({"chains": case_chains("length"), "kind": "random"}, "unknown chain kind"),
    ],
)
def test_bad_data_configs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DataConfig(**kwargs)
