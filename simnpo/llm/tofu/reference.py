"""The retain model's results as every other model's reference: its per-item forget truth ratios (forget quality)
and its Min-K% AUC (privleak), from our TOFU_EVAL.json or open-unlearning's."""

from __future__ import annotations

from dataclasses import dataclass

from simnpo.llm.tofu.metrics import forget_ratios
from simnpo.llm.tofu.privacy import retain_auc_of
from simnpo.runs import read_json


@dataclass(frozen=True)
class TofuReference:
    """What the retain model's results give every other model: its per-item forget truth ratios (forget quality) and
    its Min-K% AUC (privleak; None where its results hold none)."""

    ratios: list[float]
    mia_auc: float | None = None


def retain_reference(path, split: str, protocol: str = "open-unlearning") -> TofuReference:
    """The retain model's per-item forget truth ratios and Min-K% AUC from our TOFU_EVAL.json or open-unlearning's
    (which holds no protocol: its own, ``open-unlearning``); one made for another split or under another protocol is
    refused."""
    try:
        results = read_json(path)  # a file that is not JSON says so itself
    except FileNotFoundError:
        raise ValueError(f"retain results file {path} not found") from None
    meta = results.get("_meta", {}) if isinstance(results, dict) else {}
    if meta.get("split") is not None and meta["split"] != split:
        raise ValueError(f"{path} holds retain-model results for {meta['split']}, not {split}")
    made_under = meta.get("protocol", "open-unlearning")
    if made_under != protocol:
        raise ValueError(
            f"{path} holds retain-model results made under the {made_under} protocol, not {protocol}; "
            f"evaluate the retain model with --protocol {protocol}"
        )
    try:
        return reference_of(results)
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{path} has no forget_truth_ratio.value_by_index; give a TOFU_EVAL.json") from None


def reference_of(results: dict) -> TofuReference:
    """What a retain model's results give every later model: its forget truth ratios and Min-K% AUC."""
    return TofuReference(forget_ratios(results), retain_auc_of(results))
