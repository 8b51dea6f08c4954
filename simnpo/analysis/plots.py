"""``simnpo plot``: every figure the given run folders support, from their result files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from simnpo.analysis import attacks, muse, tofu, wmdp
from simnpo.analysis import markov as mk
from simnpo.analysis.style import save_figure
from simnpo.runs import MARKOV_RESULTS_FILE

KINDS = (
    "markov",
    "markov-weights",
    "tofu-quality-utility",
    "tofu-truth-ratio",
    "tofu-epochs",
    "tofu-weights",
    "relearn",
    "muse-privleak-utility",
    "muse-table",
    "wmdp-forget-utility",
    "wmdp-relearn",
    "attacks",
)


def load_run(folder: Path) -> dict:
    """Everything plottable in one run folder of any simnpo command, as tidy records: ``markov`` (the results of a
    Markov run, or None), ``models`` / ``history`` (TOFU evaluations and unlearning histories), ``relearn``
    (relearning curves), ``muse`` / ``muse_history`` (MUSE evaluations, every evaluation point), ``wmdp`` (WMDP
    evaluations and relearning curves), and
    ``trainers`` (each method's settings)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder; give run folders made by simnpo")
    markov = mk.load_markov_results(folder) if (folder / MARKOV_RESULTS_FILE).is_file() else None
    return {
        "markov": markov,
        **tofu.tofu_records(folder),
        "muse": muse.muse_records(folder),
        "muse_history": muse.muse_history(folder),
        "wmdp": wmdp.wmdp_records(folder),
        "trainers": _trainers(folder),
    }


def figures(folders: list[Path]) -> dict[str, Callable]:
    """Figure name -> a function drawing it, for every figure the folders have data for."""
    out: dict[str, Callable] = {}
    records: dict[str, list] = {"models": [], "history": [], "relearn": [], "muse": [], "muse_history": []}
    wmdp_runs: dict[str, list] = {"models": [], "relearn": []}
    for folder in map(Path, folders):
        run = load_run(folder)
        for key in records:
            records[key] += run[key]
        for key in wmdp_runs:
            wmdp_runs[key] += run["wmdp"][key]
        if run["markov"] is not None:
            out.update(mk.markov_figures(run["markov"]))  # per (β, lr) point and case, and the robustness map
        if run["muse"]:
            title = f"MUSE ({folder.name})"
            out[f"muse_table_{folder.name}"] = lambda m=run["muse"], t=title: muse.plot_metric_table(m, t)
        for name, report in attacks.load_reports(folder):  # `simnpo attack quantize` and `simnpo attack all`
            out[f"attack_{name}"] = lambda r=report: attacks.plot_attacks(r)
        models, history = run["models"], run["history"]
        if {"target", "retain"} <= {r["model"] for r in models} and len(models) > 2:
            out[f"tofu_truth_ratio_{folder.name}"] = lambda m=models: tofu.plot_truth_ratio_memorisation(m)
        several_points = len({h["epoch"] for h in history}) > 1
        if run["trainers"] and several_points and tofu.has_answer_lengths(models):
            out[f"tofu_weights_{folder.name}"] = lambda m=models, h=history, t=run["trainers"]: (
                tofu.plot_weights_over_training(m, h, t)
            )
    if any(r.get("forget_quality") is not None for r in records["models"]):
        out["tofu_quality_utility"] = lambda: tofu.plot_quality_utility(records["models"], records["history"])
    if len({h["epoch"] for h in records["history"]}) > 1:
        out["tofu_epochs"] = lambda: tofu.plot_over_epochs(records["history"])
    if any(r.get("privleak") is not None for r in records["muse"]):
        out["muse_privleak_utility"] = lambda: muse.plot_privleak_utility(records["muse"], records["muse_history"])
    if records["relearn"]:
        out["relearn"] = lambda: tofu.plot_relearning(records["relearn"])
    if any(r.get(task) is not None for r in wmdp_runs["models"] for task in wmdp.HAZARD_NAMES):
        out["wmdp_forget_utility"] = lambda: wmdp.plot_forget_utility(wmdp_runs["models"])
    if wmdp_runs["relearn"]:
        out["wmdp_relearn"] = lambda: wmdp.plot_relearning(wmdp_runs["relearn"])
    return out


def _trainers(folder: Path) -> dict[str, dict]:
    """The loss settings (beta, margin, …) of each method of a ``simnpo llm`` run, from its config.json (empty for
    other runs)."""
    from simnpo.runs import CONFIG_FILE, RUN, read_config

    run = read_config(folder)["configs"].get(RUN) if (Path(folder) / CONFIG_FILE).is_file() else None
    return {t["loss"]["method"]: t["loss"] for t in run["trainers"]} if run else {}


def kind_of(name: str) -> str:
    if name.startswith("markov_"):  # markov_robustness too: it summarises the trajectories over seeds
        return "markov-weights" if name.endswith("_weights") else "markov"
    if name.startswith("tofu_truth_ratio"):
        return "tofu-truth-ratio"
    if name.startswith("tofu_weights"):
        return "tofu-weights"
    if name.startswith("muse_table"):
        return "muse-table"
    if name.startswith("attack_"):
        return "attacks"
    return {
        "tofu_quality_utility": "tofu-quality-utility",
        "tofu_epochs": "tofu-epochs",
        "muse_privleak_utility": "muse-privleak-utility",
        "wmdp_forget_utility": "wmdp-forget-utility",
        "wmdp_relearn": "wmdp-relearn",
    }.get(name, name)


def select(folders: list[Path], kinds: tuple[str, ...] | None) -> dict[str, Callable]:
    """The figures of ``kinds`` (all when None) that the folders support; a clear error when there are none."""
    unknown = [k for k in kinds or () if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown figure kind {unknown[0]!r}; use one of {', '.join(KINDS)}")
    available = {n: f for n, f in figures(folders).items() if kinds is None or kind_of(n) in kinds}
    if not available:
        what = f" of kind {', '.join(kinds)}" if kinds else ""
        raise ValueError(
            f"nothing to plot{what} in {', '.join(str(f) for f in folders)}: give folders of simnpo markov, llm, "
            "eval, relearn or attack runs"
        )
    return available


def write_figures(selected: dict[str, Callable], out: Path) -> list[Path]:
    """Draw each selected figure into ``out`` as PNG and PDF."""
    paths = []
    for name, draw in selected.items():
        paths += save_figure(draw(), out, name)
    return paths
