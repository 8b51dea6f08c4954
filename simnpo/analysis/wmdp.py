"""WMDP figures, read from run folders of ``simnpo llm --bench wmdp``, ``simnpo eval --bench wmdp`` and
``simnpo relearn`` on them.

Records: one dict per evaluated model (``run``, ``model``, each task's accuracy, the tasks scored): the starting
models' ``WMDP_SUMMARY.json`` and each method's last ``history.json`` entry; relearning curves (accuracy per task
over relearning steps).
"""

from __future__ import annotations

from pathlib import Path

from simnpo.analysis.records import run_records
from simnpo.analysis.style import method_color, method_label, new_figure
from simnpo.llm.wmdp.data import CHANCE, HAZARD_NAMES, SUMMARY_FILE
from simnpo.runs import RELEARN_FILE, read_json


def wmdp_records(folder: Path) -> dict[str, list[dict]]:
    """Every evaluated model (``models``) and relearning curve (``relearn``) of one WMDP run folder."""
    folder = Path(folder)
    models = run_records(folder, SUMMARY_FILE, "tasks")[0]  # WMDP's histories name their tasks
    relearn = []
    for path in sorted(folder.glob(f"**/{RELEARN_FILE}")):
        curves = read_json(path)
        if "wmdp_bio" in curves and "mmlu" in curves:
            relearn.append({"run": folder.name, "model": path.parent.name, **curves})
    return {"models": models, "relearn": relearn}


def _hazards(records: list[dict]) -> list[str]:
    """The hazardous tasks some record scored (a summary's accuracy, or a curve with a value)."""

    def scored(value) -> bool:
        return any(v is not None for v in value) if isinstance(value, list) else value is not None

    return [task for task in HAZARD_NAMES if any(scored(r.get(task)) for r in records)]


def plot_forget_utility(models: list[dict]):
    """Per hazardous task, its accuracy against MMLU accuracy (utility), one point per model and run; the dashed
    line is chance (0.25): unlearning moves a model down toward it, keeping it right."""
    tasks = _hazards(models)
    fig, axes = new_figure(ncols=len(tasks), width=4.0, height=3.6)
    for ax, task in zip(axes[0], tasks):
        ax.axhline(CHANCE, color="black", linestyle="--", linewidth=0.8, label="chance")
        labelled = set()
        for record in models:
            if record.get(task) is None or record.get("mmlu") is None:
                continue
            name = record["model"]
            ax.scatter(
                record["mmlu"],
                record[task],
                s=60,
                color=method_color(name),
                label=None if name in labelled else method_label(name),
                edgecolor="black",
                linewidth=0.5,
                marker="*" if name in ("target", "model") else "o",
                zorder=3,
            )
            labelled.add(name)
        ax.set_xlabel("MMLU accuracy (utility)")
        ax.set_ylabel(f"WMDP-{HAZARD_NAMES[task]} accuracy (lower = forgotten)")
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize=7)
    fig.suptitle("WMDP: hazardous knowledge vs general knowledge")
    return fig


def plot_relearning(curves: list[dict]):
    """Hazardous and MMLU accuracy over relearning steps, per unlearned model (the dashed line is chance)."""
    tasks = [*_hazards(curves), "mmlu"]
    fig, axes = new_figure(ncols=len(tasks), width=3.8, height=3.2)
    for ax, task in zip(axes[0], tasks):
        for curve in curves:
            name = curve["model"]
            ax.plot(curve["steps"], curve[task], "o-", color=method_color(name), label=method_label(name))
        ax.axhline(CHANCE, color="black", linestyle="--", linewidth=0.8)
        ax.set_xlabel("relearning step")
        ax.set_ylabel(f"{'MMLU' if task == 'mmlu' else 'WMDP-' + HAZARD_NAMES[task]} accuracy")
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize=7)
    return fig
