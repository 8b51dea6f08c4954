"""TOFU and relearning figures, read from run folders of ``simnpo llm``, ``simnpo eval`` and ``simnpo relearn``.

Records: one dict per evaluated model (``run``, ``model``, the summary numbers, the path of its TOFU_EVAL.json), one
per evaluation point of an unlearning run (``history``), and one curve per relearned model (``relearn``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from simnpo.analysis.records import run_records
from simnpo.analysis.style import draw_paths, mark_utility_floor, method_color, method_label, new_figure
from simnpo.llm.tofu.metrics import BEST_POINT_UTILITY, RESULTS_FILE, SUMMARY_FILE, forget_quality, forget_ratios
from simnpo.runs import RELEARN_FILE, evaluation_file, read_json


def tofu_records(folder: Path) -> dict[str, list[dict]]:
    """Everything plottable in one TOFU run folder (empty lists where there is nothing)."""
    folder = Path(folder)
    models, history = run_records(
        folder, SUMMARY_FILE, "forget_truth_ratio", RESULTS_FILE
    )  # TOFU's histories: truth ratios
    out: dict[str, list[dict]] = {"models": models, "history": history, "relearn": []}
    for curve_path in sorted(folder.glob(f"**/{RELEARN_FILE}")):
        curves = read_json(curve_path)
        if "forget_quality" in curves:  # TOFU's curves (another benchmark's relearning has its own metrics)
            out["relearn"].append({"run": folder.name, "model": curve_path.parent.name, **curves})
    return out


def plot_quality_utility(models: list[dict], history: list[dict] = ()):
    """Forget quality (log scale) against model utility, one point per evaluated model and run, and each method's
    path from the target through its evaluations (runs with ``--eval-every``); the dotted line is the least utility a
    best point keeps."""
    fig, axes = new_figure(width=5.2, height=4.0)
    ax = axes[0, 0]
    starts = [r for r in models if r["model"] in ("target", "model")]
    draw_paths(ax, starts, history, "model_utility", "forget_quality", 1e-30)
    share = BEST_POINT_UTILITY
    floors = [share * r["model_utility"] for r in starts]
    mark_utility_floor(ax, floors, f"{100 * share:.0f} % of the target's utility (best points)")
    labelled = set()
    for record in models:
        fq = record.get("forget_quality")
        if fq is None:
            continue
        name = record["model"]
        label = None if name in labelled else method_label(name)
        labelled.add(name)
        ax.scatter(
            record["model_utility"],
            max(fq, 1e-30),
            s=60,
            color=method_color(name),
            label=label,
            edgecolor="black",
            linewidth=0.5,
            marker="*" if name == "retain" else "o",
        )
    ax.set_yscale("log")
    ax.set_xlabel("model utility (harmonic mean of 9 TOFU scores)")
    ax.set_ylabel("forget quality (KS-test p-value, log scale)")
    ax.set_title("TOFU: forget quality vs model utility")
    ax.legend(fontsize=7)
    return fig


def _forget_ratios(eval_path: str) -> np.ndarray:
    return np.array(forget_ratios(read_json(eval_path)))


def plot_truth_ratio_memorisation(models: list[dict]):
    """Truth-ratio distributions on the forget set, split into strongly and weakly memorised items by the target
    model's answer loss (median split), with forget quality per subset in the legend (paper Fig. on TOFU)."""
    by_name = {r["model"]: r for r in models if Path(r["eval_path"]).is_file()}
    if not {"target", "retain"} <= set(by_name):
        raise ValueError("the truth-ratio figure needs the target and retain evaluations of the same run")
    target = read_json(by_name["target"]["eval_path"])["forget_Q_A_Prob"]["value_by_index"]
    loss = np.array([target[k]["avg_loss"] for k in sorted(target, key=int)])
    strong = loss <= np.median(loss)  # low loss on the target = strongly memorised
    retain = _forget_ratios(by_name["retain"]["eval_path"])
    names = ["retain"] + [n for n in by_name if n not in ("target", "retain")]
    fig, axes = new_figure(ncols=2, width=4.4, height=3.4)
    logs = np.log10(np.concatenate([_forget_ratios(by_name[n]["eval_path"]) for n in names]))
    bins = np.linspace(logs.min(), logs.max(), 25)
    for ax, subset, title in ((axes[0, 0], strong, "strongly memorised"), (axes[0, 1], ~strong, "weakly memorised")):
        for name in names:
            ratios = _forget_ratios(by_name[name]["eval_path"])
            fq = forget_quality(ratios[subset], retain[subset])
            ax.hist(
                np.log10(ratios[subset]),
                bins=bins,
                histtype="step",
                linewidth=1.6,
                color=method_color(name),
                label=f"{method_label(name)} (forget quality {fq:.2g})",
            )
        ax.set_xlabel("log10 truth ratio on forget items")
        ax.set_ylabel("items")
        ax.set_title(f"{title} ({int(subset.sum())} items)")
        ax.legend(fontsize=7)
    return fig


def plot_over_epochs(history: list[dict]):
    """Model utility and forget quality over the unlearning epochs of each method."""
    fig, axes = new_figure(ncols=2, width=4.2, height=3.2)
    for name in dict.fromkeys(h["model"] for h in history):
        points = [h for h in history if h["model"] == name]
        epochs = [p["epoch"] for p in points]
        axes[0, 0].plot(
            epochs, [p["model_utility"] for p in points], "o-", color=method_color(name), label=method_label(name)
        )
        axes[0, 1].plot(
            epochs,
            [max(p["forget_quality"] or 1e-30, 1e-30) for p in points],
            "o-",
            color=method_color(name),
            label=method_label(name),
        )
    axes[0, 0].set_ylabel("model utility")
    axes[0, 1].set_ylabel("forget quality (log scale)")
    axes[0, 1].set_yscale("log")
    for ax in axes[0]:
        ax.set_xlabel("unlearning epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(fontsize=7)
    return fig


def plot_relearning(curves: list[dict]):
    """Forget quality and forget probability over relearning steps, per unlearned model: on every forget item
    (solid) and on the items not relearned on (dashed, runs that scored them)."""
    fig, axes = new_figure(ncols=2, width=4.2, height=3.4)
    for curve in curves:
        name, steps = curve["model"], curve["steps"]
        held = curve.get("held_out") or {}
        for ax, key in ((axes[0, 0], "forget_quality"), (axes[0, 1], "forget_Q_A_Prob")):
            floor = 1e-30 if key == "forget_quality" else None
            for values, style, part in ((curve[key], "o-", "all items"), (held.get(key), "s--", "not relearned")):
                if values:
                    ys = [np.nan if v is None else max(v, floor) if floor else v for v in values]
                    label = f"{method_label(name)}, {part}" if held else method_label(name)
                    ax.plot(steps, ys, style, color=method_color(name), label=label, markersize=4)
    axes[0, 0].set_yscale("log")
    axes[0, 0].set_ylabel("forget quality (log scale)\nlower = knowledge back")
    axes[0, 1].set_ylabel("forget answer probability\nhigher = knowledge back")
    for ax in axes[0]:
        ax.set_xlabel("relearning step")
        ax.legend(fontsize=7)
    return fig


def has_answer_lengths(models: list[dict]) -> bool:
    """Whether the run's target evaluation kept |y| per forget answer (runs from simnpo 0.1 on do)."""
    target = [r for r in models if r["model"] == "target" and Path(r["eval_path"]).is_file()]
    if not target:
        return False
    entries = read_json(target[0]["eval_path"])["forget_Q_A_Prob"]["value_by_index"]
    return all("tokens" in e for e in entries.values())


def plot_weights_over_training(models: list[dict], history: list[dict], trainers: dict[str, dict]):
    """The NPO and SimNPO gradient weights of the forget answers at each evaluation point of each method's run,
    for short and long answers (median split of |y|), derived from the saved per-item answer losses and lengths:
    log π = -avg_loss·|y|, and the target's log π is NPO's reference (paper Fig. 5)."""
    import torch

    from simnpo.losses import npo_weights, simnpo_weights

    def answers(eval_path):
        entries = read_json(eval_path)["forget_Q_A_Prob"]["value_by_index"]
        rows = [entries[k] for k in sorted(entries, key=int)]
        n = torch.tensor([float(r["tokens"]) for r in rows])
        return -torch.tensor([r["avg_loss"] for r in rows]) * n, n

    target = next(r for r in models if r["model"] == "target")
    ref, n = answers(target["eval_path"])
    long = n > n.median()
    methods = list(dict.fromkeys(h["model"] for h in history))
    fig, axes = new_figure(ncols=len(methods), width=4.2, height=3.2)
    for ax, method in zip(axes[0], methods):
        beta, margin, convention = (trainers[method][k] for k in ("beta", "margin", "margin_convention"))
        folder = Path(target["eval_path"]).parent.parent / method
        epochs = sorted({h["epoch"] for h in history if h["model"] == method and h["run"] == target["run"]})
        for kind in ("npo", "simnpo"):
            for subset, style, label in ((~long, "-", "short"), (long, "--", "long")):
                values = []
                for epoch in epochs:
                    logps, _ = answers(evaluation_file(folder, epoch, RESULTS_FILE))
                    if kind == "npo":
                        w = npo_weights(logps, ref, beta)
                    else:
                        w = simnpo_weights(logps, n, beta, margin, convention) * n
                    values.append(w[subset].mean().item())
                ax.plot(
                    epochs,
                    values,
                    style,
                    marker="o",
                    color=method_color(kind),
                    label=f"{'NPO w' if kind == 'npo' else 'SimNPO |y|·w'}, {label} answers",
                )
        ax.set_xlabel("unlearning epoch")
        ax.set_ylabel("mean gradient weight per token")
        ax.set_title(f"unlearning with {method_label(method)} (β {beta:g})")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(fontsize=7)
    return fig
