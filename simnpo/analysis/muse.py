"""MUSE figures, read from run folders of ``simnpo llm --bench muse`` and ``simnpo eval --bench muse``.

Records: one dict per evaluated model (``run``, ``model``, the four metrics and the PrivLeak AUC): the starting
models' ``MUSE_SUMMARY.json`` and each method's last ``history.json`` entry.
"""

from __future__ import annotations

from pathlib import Path

from simnpo.analysis.records import run_records
from simnpo.analysis.style import draw_paths, mark_utility_floor, method_color, method_label, new_figure
from simnpo.llm.muse.metrics import BEST_POINT_UTILITY, SUMMARY_FILE

METRICS = (
    ("verbmem_f", "VerbMem D_f ↓"),
    ("knowmem_f", "KnowMem D_f ↓"),
    ("privleak", "PrivLeak (→ 0)"),
    ("knowmem_r", "KnowMem D_r ↑"),
)


def muse_records(folder: Path) -> list[dict]:
    """Every evaluated model of one MUSE run folder (empty when it holds none)."""
    return run_records(folder, SUMMARY_FILE, "verbmem_f")[0]


def muse_history(folder: Path) -> list[dict]:
    """Every evaluation point of each method of one MUSE run folder (``run``, ``model``, ``epoch``, the metrics)."""
    return run_records(folder, SUMMARY_FILE, "verbmem_f")[1]


def plot_privleak_utility(models: list[dict], history: list[dict] = ()):
    """PrivLeak against KnowMem on D_r (utility), one point per model and run (paper's MUSE figure), and each
    method's path from the target through its evaluations (runs with ``--eval-every``); the retrain model is the
    star, the grey band |PrivLeak| ≤ 5 only guides the eye to its 0, and the dotted line is the least utility a best
    point keeps."""
    fig, axes = new_figure(width=5.2, height=4.0)
    ax = axes[0, 0]
    draw_paths(ax, [r for r in models if r["model"] in ("target", "model")], history, "knowmem_r", "privleak")
    ax.axhspan(-5, 5, color="#dddddd", alpha=0.6, zorder=0, label="|PrivLeak| ≤ 5")
    share = BEST_POINT_UTILITY
    floors = [share * r["knowmem_r"] for r in models if r["model"] == "retrain"]
    mark_utility_floor(ax, floors, f"{100 * share:.0f} % of the retrain utility (best points)")
    ax.axhline(0, color="black", linewidth=0.6)
    labelled = set()
    for record in models:
        if record.get("privleak") is None:
            continue
        name = record["model"]
        ax.scatter(
            record["knowmem_r"],
            record["privleak"],
            s=60,
            color=method_color(name),
            label=None if name in labelled else method_label(name),
            edgecolor="black",
            linewidth=0.5,
            marker="*" if name == "retrain" else "o",
            zorder=3,
        )
        labelled.add(name)
    ax.set_xlabel("KnowMem on D_r (utility, ROUGE-L F1 × 100)")
    ax.set_ylabel("PrivLeak (%, 0 = like the retrain model)")
    ax.set_title("MUSE: privacy leakage vs utility")
    ax.legend(fontsize=7)
    return fig


def plot_metric_table(models: list[dict], title: str = "MUSE"):
    """The four MUSE metrics per model as a table figure, rows coloured by method."""
    fig, axes = new_figure(width=6.4, height=0.5 + 0.32 * (len(models) + 1))
    ax = axes[0, 0]
    ax.axis("off")
    cells = [["n/a" if r.get(key) is None else f"{r[key]:.1f}" for key, _ in METRICS] for r in models]
    table = ax.table(
        cellText=cells,
        rowLabels=[method_label(r["model"]) for r in models],
        colLabels=[label for _, label in METRICS],
        loc="center",
        cellLoc="center",
    )
    table.scale(1, 1.3)
    for row, record in enumerate(models, start=1):
        table[row, -1].get_text().set_color(method_color(record["model"]))
    ax.set_title(title)
    return fig
