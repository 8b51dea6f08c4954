"""The attacks' reports, read from result files: how much forgotten knowledge relearning and quantization bring
back, per unlearned model, and the figure of it.

A report (``quantize.json`` of ``simnpo attack quantize``, ``robustness.json`` of ``simnpo attack all``) holds per
model its benchmark summary under each condition (``full``: as unlearned, in full precision; ``relearned``; each
quantization), the target (the model unlearning started from) first, and names the forget columns, the utility and
the ``knowledge`` metric. Recovery (Zhang et al., "Catastrophic Failure of LLM Unlearning via Quantization",
ICLR 2025, report it as knowledge retained) is the share of what unlearning removed that an attack brings back:
(attacked − unlearned) / (target − unlearned) of the knowledge metric, in full precision for both ends.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from simnpo.analysis.style import method_color, method_label, new_figure
from simnpo.runs import read_json

FULL, RELEARNED = "full", "relearned"
QUANTIZE_FILE, ROBUSTNESS_FILE = "quantize.json", "robustness.json"
REPORT_FILES = (QUANTIZE_FILE, ROBUSTNESS_FILE)
CONDITION_LABELS = {
    FULL: "full precision",
    RELEARNED: "relearned",
    "int8": "8-bit",
    "fp4": "4-bit FP4",
    "nf4": "4-bit NF4",
}
# an unlearning that moved the knowledge metric by less than this share of the target's value removed too little for
# a share of it to mean anything (a drop of 0.006 in forget probability would turn noise into ±50 %)
MIN_DROP = 0.05


def condition_label(condition: str) -> str:
    return CONDITION_LABELS.get(condition, condition)


def robustness_report(quantize: dict, relearned: dict[str, dict]) -> dict:
    """The quantization report with each model's relearning curves' last point (``relearn.json``, per model) added
    as the ``relearned`` condition, right after ``full``."""
    keys = [key for key, _ in metric_columns(quantize)]
    models = {}
    for model, conditions in quantize["models"].items():
        curve = relearned.get(model)
        last = {} if curve is None else {RELEARNED: {k: curve[k][-1] for k in keys if k in curve}}
        models[model] = {FULL: conditions[FULL], **last, **{c: s for c, s in conditions.items() if c != FULL}}
    conditions = [FULL, RELEARNED, *(c for c in quantize["conditions"] if c != FULL)]
    return judged({**quantize, "attack": "all", "conditions": conditions, "models": models})


def judged(report: dict) -> dict:
    """The report with each unlearned model's recovery under each attack and the model that holds best."""
    return report | {"recovered": recovered(report), "holds_best": holds_best(report)}


def metric_columns(report: dict) -> list[list[str]]:
    """(summary key, label) of the forget columns and the utility."""
    return [*report["columns"], *([report["utility"]] if report.get("utility") else [])]


def recovered(report: dict) -> dict[str, dict[str, float | None]]:
    """Per unlearned model (every model after the target), per attack condition: the percentage of the knowledge
    metric's drop under unlearning that the attack brings back (None where unlearning moved it less than
    ``MIN_DROP`` of the target's value or a value is missing)."""
    key = report["knowledge"]
    models = list(report["models"].items())
    target = models[0][1][FULL].get(key)
    out = {}
    for model, conditions in models[1:]:
        unlearned = conditions[FULL].get(key)
        row = {}
        for condition in report["conditions"][1:]:
            value = conditions.get(condition, {}).get(key)
            usable = None not in (target, unlearned, value) and abs(target - unlearned) > MIN_DROP * abs(target)
            row[condition] = 100 * (value - unlearned) / (target - unlearned) if usable else None
        out[model] = row
    return out


def holds_best(report: dict) -> str | None:
    """The unlearned model whose worst attack brings back the least knowledge (None when none can be judged)."""
    worst = {}
    for model, row in recovered(report).items():
        values = [v for v in row.values() if v is not None]
        if values:
            worst[model] = max(values)
    return min(worst, key=worst.get) if worst else None


def load_reports(folder: Path) -> list[tuple[str, dict]]:
    """Every attack report in ``folder`` or one level down (a run folder holds ``quantize/quantize.json`` and
    ``robustness.json``), as (name, report)."""
    folder = Path(folder)
    paths = [p for name in REPORT_FILES for p in (folder / name, *sorted(folder.glob(f"*/{name}"))) if p.is_file()]
    return [(f"{path.stem}_{path.parent.name}", read_json(path)) for path in paths]


def plot_attacks(report: dict, title: str = ""):
    """One panel per forget column and the utility: each model's value under each condition (full precision, then
    each attack), the target dashed."""
    panels = metric_columns(report)
    conditions = report["conditions"]
    fig, axes = new_figure(ncols=len(panels), width=3.4, height=3.3)
    x = np.arange(len(conditions))
    for ax, (key, label) in zip(axes[0], panels):
        for i, (model, by_condition) in enumerate(report["models"].items()):
            values = [by_condition.get(c, {}).get(key) for c in conditions]
            y = np.array([np.nan if v is None else v for v in values], dtype=float)
            style = "--" if i == 0 else "-"
            ax.plot(x, y, style, marker="o", color=method_color(model), label=method_label(model))
        if key == "forget_quality":
            ax.set_yscale("log")  # a p-value: what moves is its order of magnitude
        ax.set_xticks(x, [condition_label(c) for c in conditions], rotation=20)
        ax.set_title(label)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(title or f"{report['bench'].upper()}: forget metrics and utility under each attack", fontsize=10)
    return fig
