"""TOFU's membership-inference results in open-unlearning's layout: each attack (``llm/mia.py``) scores the forget
items and the holdout items of the same size (``forget10`` → ``holdout10``, open-unlearning's ``TOFU_MIA`` data:
question, answer, its chat template) and is reported as ``mia_ATTACK`` {forget, holdout, auc, agg_value};
``privleak`` is the Min-K% AUC relative to the retain model's (open-unlearning's default TOFU evaluation:
``configs/eval/tofu_metrics/privleak.yaml``, ``ref_value`` 0.5 when no retain-model logs are given)."""

from __future__ import annotations

from simnpo.llm import mia

NO_RETAIN_AUC = 0.5  # open-unlearning's ref_value


def holdout_split(split: str) -> str:
    """The holdout set of a forget split's size (``forget05`` → ``holdout05``)."""
    return split.replace("forget", "holdout")


def privleak_entry(results: dict, retain_auc: float | None) -> dict:
    """PrivLeak of a model's Min-K% AUC against the retain model's (``NO_RETAIN_AUC`` when not given, said so)."""
    auc = results["mia_min_k"]["agg_value"]
    if retain_auc is None:
        return {
            "agg_value": mia.privleak(auc, NO_RETAIN_AUC),
            "reference_auc": NO_RETAIN_AUC,
            "reference": "no retain-model results given: open-unlearning's default AUC 0.5",
        }
    return {"agg_value": mia.privleak(auc, retain_auc), "reference_auc": retain_auc}


def retain_auc_of(results: dict) -> float | None:
    """The retain model's Min-K% AUC from its TOFU_EVAL dict, ours or open-unlearning's (None where it has none)."""
    entry = results.get("mia_min_k")
    return entry.get("agg_value") if isinstance(entry, dict) else None
