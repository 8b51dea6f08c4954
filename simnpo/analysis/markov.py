"""Figures and findings of the Markov-chain experiments, read from a run folder's ``results.json``.

The paper's figure plots, per case, forget KL (y) against retain KL (x) along the unlearning iterations: one colour
per method (NPO blue, SimNPO red), one line style per forget chain, markers at the pretrained and retrained points.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

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
    return results


def forget_names(case: dict) -> list[str]:
    return [c["name"] for c in case["chains"][1:]]


def plot_trajectories(results: dict, case_name: str):
    """Forget KL against retain KL along the iterations for every method and forget chain of one case."""
    case = results["cases"][case_name]
    fig, axes = new_figure(width=5.2, height=4.0)
    ax = axes[0, 0]
    ref = case["reference"]
    for i, chain in enumerate(forget_names(case)):
        style = CHAIN_STYLES[i % len(CHAIN_STYLES)]
        for method, run in case["methods"].items():
            x, y = run["kl"]["retain"]["mean"], run["kl"][chain]["mean"]
            ax.plot(x, y, style, color=method_color(method), linewidth=1.6, label=f"{method_label(method)}, {chain}")
        for point, marker, size in (("pretrained", "o", 6), ("retrained", "*", 11)):
            ax.plot(ref[point]["retain"]["mean"], ref[point][chain]["mean"], marker, color="black", markersize=size)
    ax.plot([], [], "o", color="black", markersize=6, label="pretrained model")
    ax.plot([], [], "*", color="black", markersize=11, label="retrained model (oracle)")
    # log axes: the early iterations, where the methods differ, span two decades of retain KL
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("retain KL to the true chain (nats/token, log scale)")
    ax.set_ylabel("forget KL to the true chain (nats/token, log scale)")
    seeds = len(case["seeds"])
    ax.set_title(f"{case_name} case: unlearning trajectories ({seeds} seed{'s, mean' if seeds > 1 else ''})")
    ax.legend(fontsize=7)
    return fig


def plot_weights_over_iterations(results: dict, case_name: str):
    """Mean NPO and SimNPO gradient weight per forget chain over the iterations of each method's own run."""
    case = results["cases"][case_name]
    methods = list(case["methods"])
    fig, axes = new_figure(ncols=len(methods), width=4.0, height=3.2)
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
        ax.set_title(f"{case_name} case, unlearning with {method_label(method)}")
    axes[0, 0].legend(fontsize=7)
    return fig


def retain_kl_at(forget_kl: list[float], retain_kl: list[float], level: float) -> float | None:
    """The retain KL when the forget KL first reaches ``level`` (linear between iterations); None if never."""
    f, r = np.asarray(forget_kl), np.asarray(retain_kl)
    reached = np.nonzero(f >= level)[0]
    if len(reached) == 0:
        return None
    i = reached[0]
    if i == 0:
        return float(r[0])
    t = (level - f[i - 1]) / (f[i] - f[i - 1])
    return float(r[i - 1] + t * (r[i] - r[i - 1]))


def findings(results: dict, methods: tuple[str, str] = ("npo", "simnpo")) -> list[dict]:
    """The paper's findings, checked on the results.

    difficulty: for each pretrained forget chain, SimNPO reaches the retrained model's forget KL ("forgotten as if
    never trained") at a lower retain KL than NPO. length: the same for each short forget chain. If a method never
    reaches that level, the level is lowered to the highest forget KL both reach.
    """
    out = []
    for case_name, case in results["cases"].items():
        if not all(m in case["methods"] for m in methods):
            continue
        longest = max(c["length"] for c in case["chains"])
        for chain in case["chains"][1:]:
            if case_name == "difficulty" and not chain["pretrain"]:
                continue
            if case_name == "length" and chain["length"] == longest:
                continue
            name = chain["name"]
            runs = [case["methods"][m]["kl"] for m in methods]
            level = case["reference"]["retrained"][name]["mean"]
            level = min([level] + [max(r[name]["mean"]) for r in runs])
            costs = [retain_kl_at(r[name]["mean"], r["retain"]["mean"], level) for r in runs]
            out.append(
                {
                    "case": case_name,
                    "chain": name,
                    "forget_kl": level,
                    "retain_kl": dict(zip(methods, costs)),
                    "holds": costs[1] < costs[0],
                    "claim": f"{methods[1]} reaches forget KL {level:.3f} on {name} "
                    f"at lower retain KL than {methods[0]}",
                }
            )
    return out


def summary_rows(results: dict) -> list[list[str]]:
    """Rows for the terminal table: case, model, retain KL and each forget chain's KL at the end (± std over seeds)."""
    rows = []
    for case_name, case in results["cases"].items():
        names = ["retain"] + forget_names(case)
        for point in ("pretrained", "retrained"):
            rows.append([case_name, point] + [f"{case['reference'][point][n]['mean']:.3f}" for n in names])
        for method, run in case["methods"].items():
            kl = run["kl"]
            spread = len(case["seeds"]) > 1
            cells = [f"{kl[n]['mean'][-1]:.3f}" + (f" ± {kl[n]['std'][-1]:.3f}" if spread else "") for n in names]
            rows.append([case_name, f"{method} @{run['iterations'][-1]}"] + cells)
    return rows


def write_markov_figures(results: dict, folder: Path | str) -> list[Path]:
    paths = []
    for case_name in results["cases"]:
        paths += save_figure(plot_trajectories(results, case_name), folder, f"markov_{case_name}")
        paths += save_figure(plot_weights_over_iterations(results, case_name), folder, f"markov_{case_name}_weights")
    return paths
