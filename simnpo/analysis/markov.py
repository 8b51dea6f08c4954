"""Figures and tables of the Markov-chain experiments, read from a run folder's ``results.json``.

The SimNPO paper's (arXiv 2410.07163, Sec. 4) Markov-chain figure plots, per case, forget KL (y) against retain KL
(x) along the unlearning iterations: one colour per method (NPO blue, SimNPO red), one line style per forget chain,
markers at the pretrained and retrained points. A run may sweep several (β, lr) points and seeds: every point gets
its own figures, the seeds a band, and the paired statistics over seeds a heat map (``robustness``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from simnpo.analysis.robustness import (
    plot_robustness,
    setting,
    several_seeds,
)
from simnpo.analysis.style import method_color, method_label, new_figure, save_figure
from simnpo.runs import MARKOV_RESULTS_FILE, read_json

CHAIN_STYLES = ("-", "--", ":", "-.")


def load_markov_results(folder: Path | str) -> dict:
    path = Path(folder) / MARKOV_RESULTS_FILE
    if not path.is_file():
        raise ValueError(f"{folder} holds no results.json of a Markov run; run `simnpo markov --out {folder}` first")
    results = read_json(path)
    if results.get("kind") != "markov":
        raise ValueError(f"{path} is not a Markov-chain result file")
    if "points" not in results:
        raise ValueError(f"{path} was written by an older simnpo; run `simnpo markov` again to remake it")
    return results


def forget_names(case: dict) -> list[str]:
    return [c["name"] for c in case["chains"][1:]]


def point_label(point: dict) -> str:
    return f"β {setting(point['beta'])}, lr {setting(point['lr'])}"


def plot_trajectories(point: dict, case_name: str, *, show_setting: bool = False):
    """Forget KL against retain KL along the iterations for every method and forget chain of one case of one point
    (or of a whole results dict of one point); with several seeds the mean and a band of ± one standard deviation
    of the forget KL over seeds. ``show_setting`` puts the point's β and lr in the title."""
    case = point["cases"][case_name]
    fig, axes = new_figure(width=5.2, height=4.0)
    ax = axes[0, 0]
    ref = case["reference"]
    seeds = len(case["seeds"])
    for i, chain in enumerate(forget_names(case)):
        style = CHAIN_STYLES[i % len(CHAIN_STYLES)]
        for method, run in case["methods"].items():
            x = np.asarray(run["kl"]["retain"]["mean"])
            y, spread = np.asarray(run["kl"][chain]["mean"]), np.asarray(run["kl"][chain]["std"])
            color = method_color(method)
            ax.plot(x, y, style, color=color, linewidth=1.6, label=f"{method_label(method)}, {chain}")
            if seeds > 1:
                # log axes: a band reaching zero or below is drawn down to a tenth of the mean
                low = np.maximum(y - spread, y / 10)
                ax.fill_between(x, low, y + spread, color=color, alpha=0.2, linewidth=0, gid=f"band {method} {chain}")
        for name, marker, size in (("pretrained", "o", 6), ("retrained", "*", 11)):
            ax.plot(ref[name]["retain"]["mean"], ref[name][chain]["mean"], marker, color="black", markersize=size)
    ax.plot([], [], "o", color="black", markersize=6, label="pretrained model")
    ax.plot([], [], "*", color="black", markersize=11, label="retrained model (oracle)")
    # log axes: the early iterations, where the methods differ, span two decades of retain KL
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("retain KL to the true chain (nats/token, log scale)")
    ax.set_ylabel("forget KL to the true chain (nats/token, log scale)")
    over = f"{seeds} seeds, mean ± std" if seeds > 1 else "1 seed"
    where = f", {point_label(point)}" if show_setting else ""
    ax.set_title(f"{case_name} case: unlearning trajectories\n({over}{where})")
    ax.legend(fontsize=7)
    return fig


def plot_weights_over_iterations(point: dict, case_name: str, *, show_setting: bool = False):
    """Mean NPO and SimNPO gradient weight per forget chain over the iterations of each method's own run."""
    case = point["cases"][case_name]
    methods = list(case["methods"])
    fig, axes = new_figure(ncols=len(methods), width=4.0, height=3.2)
    where = f"\n{point_label(point)}" if show_setting else ""
    for ax, method in zip(axes[0], methods):
        run = case["methods"][method]
        for i, chain in enumerate(forget_names(case)):
            style = CHAIN_STYLES[i % len(CHAIN_STYLES)]
            for w in ("npo", "simnpo"):
                values = np.asarray(run["weights"][w][chain]["mean"])
                scale = next(c["length"] - 1 for c in case["chains"] if c["name"] == chain) if w == "simnpo" else 1
                label = f"{'NPO w' if w == 'npo' else 'SimNPO |y|·w'} on {chain}"
                ax.plot(run["iterations"], values * scale, style, color=method_color(w), label=label)
        ax.set_xlabel("unlearning iteration")
        ax.set_ylabel("mean gradient weight per token")
        ax.set_title(f"{case_name} case, unlearning with {method_label(method)}{where}")
    axes[0, 0].legend(fontsize=7)
    return fig


def summary_rows(results: dict) -> list[list[str]]:
    """Rows for the terminal table: case, model, retain KL and each forget chain's KL at the end (± std over seeds).
    Grouped by case: the pretrained and retrained references once (unlearning's β and lr do not change them), then
    every method of every point, named with the point's β and lr when the run has several."""
    points = results["points"]
    several = len(points) > 1
    rows = []
    for case_name in dict.fromkeys(c for p in points for c in p["cases"]):
        first = next(p["cases"][case_name] for p in points if case_name in p["cases"])
        names = ["retain"] + forget_names(first)
        for ref in ("pretrained", "retrained"):
            rows.append([case_name, ref] + [f"{first['reference'][ref][n]['mean']:.3f}" for n in names])
        for point in (p for p in points if case_name in p["cases"]):
            case = point["cases"][case_name]
            for method, run in case["methods"].items():
                model = f"{method} @{run['iterations'][-1]}" + (f", {point_label(point)}" if several else "")
                rows.append([case_name, model] + [_final_kl(run["kl"][n], len(case["seeds"])) for n in names])
    return rows


def _final_kl(entry: dict, seeds: int) -> str:
    mean, std = entry["mean"][-1], entry["std"][-1]
    return f"{mean:.3f}" + (f" ± {std:.3f}" if seeds > 1 else "")


def markov_figures(results: dict) -> dict[str, Callable]:
    """Figure name -> a function drawing it: per point and case the trajectories (``markov_{case}``) and weights
    (``markov_{case}_weights``), named ``markov_{case}_beta{β}_lr{lr}`` and ``…_weights`` when the run has several
    points, and ``markov_robustness`` (the paired statistics) when it has several seeds."""
    points = results["points"]
    several = len(points) > 1
    out: dict[str, Callable] = {}
    for point in points:
        suffix = f"_beta{setting(point['beta'])}_lr{setting(point['lr'])}" if several else ""
        for case in point["cases"]:
            out[f"markov_{case}{suffix}"] = lambda p=point, c=case: plot_trajectories(p, c, show_setting=several)
            out[f"markov_{case}{suffix}_weights"] = lambda p=point, c=case: plot_weights_over_iterations(
                p, c, show_setting=several
            )
    if several_seeds(results):
        out["markov_robustness"] = lambda: plot_robustness(results)
    return out


def write_markov_figures(results: dict, folder: Path | str) -> list[Path]:
    """Every figure of ``markov_figures`` as PNG and PDF in ``folder``."""
    paths = []
    for name, draw in markov_figures(results).items():
        paths += save_figure(draw(), folder, name)
    return paths
