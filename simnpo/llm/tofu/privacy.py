"""TOFU's membership-inference results in open-unlearning's layout: each attack (``llm/mia.py``) scores the forget
items and the holdout items of the same size (``forget10`` → ``holdout10``, open-unlearning's ``TOFU_MIA`` data:
question, answer, its chat template) and is reported as ``mia_ATTACK`` {forget, holdout, auc, agg_value};
``privleak`` is the Min-K% AUC relative to the retain model's (open-unlearning's default TOFU evaluation:
``configs/eval/tofu_metrics/privleak.yaml``, ``ref_value`` 0.5 when no retain-model logs are given)."""

from __future__ import annotations

from simnpo.llm import mia
from simnpo.llm.models import load_model

# our attack names -> open-unlearning's result keys (src/evals/metrics/mia/__init__.py)
RESULT_KEYS = {
    "loss": "mia_loss",
    "zlib": "mia_zlib",
    "min_k": "mia_min_k",
    "min_k++": "mia_min_k_plus_plus",
    "gradnorm": "mia_gradnorm",
    "reference": "mia_reference",
}
NO_RETAIN_AUC = 0.5  # open-unlearning's ref_value


def holdout_split(split: str) -> str:
    """The holdout set of a forget split's size (``forget05`` → ``holdout05``)."""
    return split.replace("forget", "holdout")


def check_attacks(attacks: tuple[str, ...]) -> None:
    for name in attacks:
        if name not in RESULT_KEYS:
            raise ValueError(f"unknown attack {name!r}; use one of {', '.join(RESULT_KEYS)}")


def _scores(values: list[float]) -> dict:
    return {
        "agg_value": float(sum(values) / len(values)),
        "value_by_index": {str(i): {"score": v} for i, v in enumerate(values)},
    }


def attack_results(forget: dict[str, list[float]], holdout: dict[str, list[float]]) -> dict:
    """``mia_ATTACK`` entries from each attack's per-item scores of the forget and the holdout items."""
    out = {}
    for name in forget:
        auc = mia.mia_auc(forget[name], holdout[name])
        out[RESULT_KEYS[name]] = {
            "forget": _scores(forget[name]),
            "holdout": _scores(holdout[name]),
            "auc": auc,
            "agg_value": auc,
        }
    return out


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


def load_reference_model(name: str, model, tokenizer):
    """The Reference attack's model, on ``model``'s device in its dtype; it scores the evaluated model's tokens, so
    it must read them (a vocabulary at least the tokenizer's)."""
    parameter = next(model.parameters())
    reference = load_model(name, str(parameter.device), str(parameter.dtype).removeprefix("torch."))
    if reference.config.vocab_size < len(tokenizer):
        raise ValueError(
            f"the reference model {name} has {reference.config.vocab_size} tokens, the tokenizer {len(tokenizer)}; "
            "give a reference model of the same tokenizer"
        )
    return reference
