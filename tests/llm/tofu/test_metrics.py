"""Each TOFU metric against values computed by hand."""

import math

import numpy as np
import pytest
import torch

from simnpo.llm.tofu import metrics as M


def test_normalised_probability_and_truth_ratio_from_known_losses():
    assert M.normalised_probability([0.0, math.log(2)]) == pytest.approx([1.0, 0.5])
    # base answer avg loss 1.0; perturbed losses 2 and 4 -> geometric mean of P̄ = exp(-3)
    ratios = M.truth_ratios(np.array([1.0]), np.array([[2.0, 4.0]]))
    assert ratios[0] == pytest.approx(math.exp(-3) / math.exp(-1))


def test_truth_ratio_scores():
    ratios = np.array([0.5, 2.0, 1.0, 0.25])
    assert M.forget_truth_ratio_score(ratios) == pytest.approx((0.5 + 0.5 + 1.0 + 0.25) / 4)
    assert M.retain_truth_ratio_score(ratios) == pytest.approx((0.5 + 0.0 + 0.0 + 0.75) / 4)


def test_option_normalised_probability():
    correct = np.array([math.log(2)])  # P̄ = 0.5
    wrong = np.array([[math.log(4), math.log(4), math.log(8)]])  # 0.25 + 0.25 + 0.125
    assert M.option_normalised_probability(correct, wrong)[0] == pytest.approx(0.5 / (0.5 + 0.625))


def test_forget_quality_is_the_ks_p_value():
    assert M.forget_quality([0.1, 0.2, 0.3], [0.1, 0.2, 0.3]) == pytest.approx(1.0)
    # disjoint samples of sizes 4 and 4: D = 1, exact two-sided p-value 2 / C(8, 4) = 2/70
    assert M.forget_quality([1, 2, 3, 4], [5, 6, 7, 8]) == pytest.approx(2 / 70)
    # invariant to R vs 1/R
    a, b = np.array([0.3, 0.9, 1.7, 2.2]), np.array([0.5, 0.8, 1.1, 4.0, 0.2])
    assert M.forget_quality(a, b) == pytest.approx(M.forget_quality(1 / a, 1 / b))


def test_model_utility_is_the_harmonic_mean_of_nine_numbers():
    scores = dict(zip(M.UTILITY_KEYS, [0.5, 1.0, 0.25, 0.5, 1.0, 0.25, 0.5, 1.0, 0.25]))
    assert M.model_utility(scores) == pytest.approx(9 / (3 * (2 + 1 + 4)))
    assert M.model_utility({**scores, "wf_Truth_Ratio": 0.0}) == 0.0


def test_rouge_l_recall_with_stemming():
    (score,) = M.rouge_recall(["the cats are running home"], ["a cat runs home"])
    # tokens after stemming: truth [the, cat, are, run, home], generation [a, cat, run, home]; LCS = cat run home
    assert score["rougeL_recall"] == pytest.approx(3 / 5)
    assert score["rouge1_recall"] == pytest.approx(3 / 5)
    assert M.rouge_recall(["exactly this"], ["exactly this"])[0]["rougeL_recall"] == 1.0


def test_exact_memorisation_and_extraction_strength():
    labels = torch.tensor([[0, 5, 6, 7, 8], [0, 5, 6, 7, 0]])
    mask = torch.tensor([[0, 1, 1, 1, 1], [0, 1, 1, 1, 0]], dtype=torch.bool)
    predictions = torch.tensor([[9, 9, 6, 7, 8], [0, 5, 6, 9, 3]])
    assert M.exact_memorisation(predictions, labels, mask).tolist() == pytest.approx([0.75, 2 / 3])
    # row 0: the suffix from answer position 1 matches -> ES = 1 - 1/4; row 1: last answer token wrong ->
    # open-unlearning's loop stops at k = |y| - 1 -> ES = 1/3
    assert M.extraction_strength(predictions, labels, mask).tolist() == pytest.approx([0.75, 1 / 3])
    perfect = M.extraction_strength(labels, labels, mask)
    assert perfect.tolist() == [1.0, 1.0]
