"""TOFU's metrics as pure functions of per-item losses, token predictions and texts (docs/conventions.md).

Conventions follow the benchmark's own evaluation code (and open-unlearning's, whose result layout we share):
- avg_loss of an answer is its mean token negative log-likelihood; its normalised probability P̄ = exp(-avg_loss).
- Truth ratio R = P̃_pert / P̄_base, with P̃_pert the geometric mean of the perturbed answers' P̄ (the mean of
  their avg_losses in log space). open-unlearning divides by (P̄_base + 1e-10); we compute exp(l_base - mean l_pert),
  the same number without the guard.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from rouge_score import rouge_scorer
from scipy.stats import hmean, ks_2samp
from torch import Tensor

RESULTS_FILE, SUMMARY_FILE = "TOFU_EVAL.json", "TOFU_SUMMARY.json"  # one model's results (open-unlearning's layout)
# the best-point rule of `simnpo llm`'s table, marked in the figures: the share of the starting model's model utility
# an evaluation must keep
BEST_POINT_UTILITY = 0.95

UTILITY_KEYS = (
    "retain_Q_A_Prob",
    "retain_Q_A_ROUGE",
    "retain_Truth_Ratio",
    "ra_Q_A_Prob_normalised",
    "ra_Q_A_ROUGE",
    "ra_Truth_Ratio",
    "wf_Q_A_Prob_normalised",
    "wf_Q_A_ROUGE",
    "wf_Truth_Ratio",
)


def normalised_probability(avg_loss: np.ndarray) -> np.ndarray:
    """P̄(a|q) = exp(-mean token NLL of a) = P(a|q)^(1/|a|)."""
    return np.exp(-np.asarray(avg_loss, dtype=float))


def truth_ratios(base_avg_loss: np.ndarray, perturbed_avg_losses: np.ndarray) -> np.ndarray:
    """R_i = P̃_pert / P̄_base per item; base [n], perturbed [n, k] (answers' avg_losses)."""
    return np.exp(np.asarray(base_avg_loss, float) - np.asarray(perturbed_avg_losses, float).mean(axis=1))


def forget_truth_ratio_score(ratios: np.ndarray) -> float:
    """Forget set: mean_i min(R_i, 1/R_i) (1 = the model cannot tell true from perturbed)."""
    ratios = np.asarray(ratios, float)
    return float(np.mean(np.minimum(ratios, 1 / ratios)))


def retain_truth_ratio_score(ratios: np.ndarray) -> float:
    """Retain, real authors, world facts: mean_i max(0, 1 - R_i) (higher = prefers the truth)."""
    return float(np.mean(np.maximum(0.0, 1 - np.asarray(ratios, float))))


def option_normalised_probability(correct_avg_loss: np.ndarray, wrong_avg_losses: np.ndarray) -> np.ndarray:
    """Per item P̄(a) / (P̄(a) + Σ_j P̄(pert_j)) (real authors and world facts)."""
    correct = normalised_probability(correct_avg_loss)
    return correct / (correct + normalised_probability(wrong_avg_losses).sum(axis=1))


def forget_ratios(results: dict) -> list[float]:
    """The per-item forget truth ratios of a TOFU_EVAL dict, in item order."""
    by_index = results["forget_truth_ratio"]["value_by_index"]
    return [by_index[k]["score"] for k in sorted(by_index, key=int)]


def forget_quality(model_ratios: Sequence[float], retain_model_ratios: Sequence[float]) -> float:
    """p-value of the two-sided two-sample KS test between the per-item forget truth ratios of the evaluated model
    and of the retain model (invariant to R vs 1/R, so either convention gives the same number)."""
    return float(ks_2samp(np.asarray(model_ratios, float), np.asarray(retain_model_ratios, float)).pvalue)


def model_utility(scores: dict[str, float]) -> float:
    """Harmonic mean of exactly the 9 numbers of UTILITY_KEYS (0 if any is 0)."""
    missing = [k for k in UTILITY_KEYS if k not in scores]
    assert not missing, f"model utility needs {missing}"
    return float(hmean([scores[k] for k in UTILITY_KEYS]))


_SCORER = rouge_scorer.RougeScorer(["rouge1", "rougeL"], use_stemmer=True)


def rouge_recall(ground_truths: Sequence[str], generations: Sequence[str]) -> list[dict[str, float]]:
    """ROUGE-1 and ROUGE-L recall (with stemming) of each generation against its ground-truth answer."""
    out = []
    for truth, generation in zip(ground_truths, generations, strict=True):
        s = _SCORER.score(truth, generation)
        out.append(
            {
                "rouge1_recall": s["rouge1"].recall,
                "rougeL_recall": s["rougeL"].recall,
                "rougeL_f1": s["rougeL"].fmeasure,
            }
        )
    return out


def open_unlearning_answer_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """The mean answer NLL [n] as open-unlearning's ``evaluate_probability`` computes it, for its numbers to the
    last digit: ``nn.CrossEntropyLoss(reduction="none")`` over the (batch, vocabulary, position) layout of float32
    logits, summed and divided by the labelled-token count. On CPU that layout's reduction over the vocabulary
    differs from the exact value by up to about 1e-4 (a 49k-token vocabulary; float64 agrees with ``token_logprobs``,
    not with it), enough to move per-item probabilities by 1e-4.

    logits: [n, T, V]; labels: [n, T] aligned with the inputs (-100 where nothing is scored)."""
    # made contiguous in this layout: the same values as open-unlearning's strided view, three times faster
    shifted = logits[:, :-1].float().transpose(-1, -2).contiguous()
    losses = torch.nn.functional.cross_entropy(shifted, labels[:, 1:], ignore_index=-100, reduction="none")
    return losses.sum(-1) / (labels != -100).sum(-1).clamp(min=1)


def exact_memorisation(predictions: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
    """Per sequence, the fraction of answer tokens the model's argmax predicts under teacher forcing.

    predictions, labels, mask: [n, T] aligned (prediction at t for label at t); returns [n].
    """
    hits = ((predictions == labels) & mask).sum(-1)
    return hits / mask.sum(-1).clamp(min=1)


def extraction_strength(predictions: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
    """Per sequence, ES = 1 - k/|y| with k the first answer position from which every argmax prediction matches.

    Like open-unlearning's loop, an answer whose last token is mispredicted scores k = |y| - 1, i.e. 1/|y|.
    """
    wrong = (predictions != labels) & mask
    length = mask.sum(-1)
    # the answer positions occupy a contiguous span; index of the last mistake within it, -1 if none
    positions = torch.cumsum(mask.long(), dim=-1) - 1
    last_wrong = torch.where(wrong, positions, torch.full_like(positions, -1)).max(-1).values
    k = torch.clamp(last_wrong + 1, max=length - 1).clamp(min=0)
    return 1 - k / length.clamp(min=1)
