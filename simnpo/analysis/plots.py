"""``simnpo plot``: every figure the given run folders support, from their result files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from simnpo.analysis import markov as mk
from simnpo.analysis import muse, tofu
from simnpo.analysis.style import save_figure

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
)


def figures(folders: list[Path]) -> dict[str, Callable]:
    """Figure name -> a function drawing it, for every figure the folders have data for."""
    out: dict[str, Callable] = {}
    records: dict[str, list] = {"models": [], "history": [], "relearn": [], "muse": []}
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise ValueError(f"{folder} is not a folder; give run folders made by simnpo")
        if (folder / "results.json").is_file():
            results = mk.load_markov_results(folder)
            for case in results["cases"]:
                out[f"markov_{case}"] = lambda r=results, c=case: mk.plot_trajectories(r, c)
                out[f"markov_{case}_weights"] = lambda r=results, c=case: mk.plot_weights_over_iterations(r, c)
        found_muse = muse.muse_records(folder)
        records["muse"] += found_muse
        if found_muse:
            title = f"MUSE ({folder.name})"
            out[f"muse_table_{folder.name}"] = lambda m=found_muse, t=title: muse.plot_metric_table(m, t)
        found = tofu.tofu_records(folder)
        for key, values in found.items():
            records[key] += values
        if {"target", "retain"} <= {r["model"] for r in found["models"]} and len(found["models"]) > 2:
            out[f"tofu_truth_ratio_{folder.name}"] = lambda m=found["models"]: tofu.plot_truth_ratio_memorisation(m)
        trainers = _trainers(folder)
        several_points = len({h["epoch"] for h in found["history"]}) > 1
        if trainers and several_points and tofu.has_answer_lengths(found["models"]):
            out[f"tofu_weights_{folder.name}"] = lambda f=found, t=trainers: tofu.plot_weights_over_training(
                f["models"], f["history"], t
            )
    if any(r.get("forget_quality") is not None for r in records["models"]):
        out["tofu_quality_utility"] = lambda: tofu.plot_quality_utility(records["models"])
    if len({h["epoch"] for h in records["history"]}) > 1:
        out["tofu_epochs"] = lambda: tofu.plot_over_epochs(records["history"])
    if any(r.get("privleak") is not None for r in records["muse"]):
        out["muse_privleak_utility"] = lambda: muse.plot_privleak_utility(records["muse"])
    if records["relearn"]:
        out["relearn"] = lambda: tofu.plot_relearning(records["relearn"])
    return out


def _trainers(folder: Path) -> dict[str, dict]:
    """The trainer settings of each method of a ``simnpo llm`` run, from its config.json (empty for other runs)."""
    from simnpo.runs import read_json

    path = Path(folder) / "config.json"
    run = read_json(path)["configs"].get("LLMRunConfig") if path.is_file() else None
    return {t["method"]: t for t in run["trainers"]} if run else {}


def kind_of(name: str) -> str:
    if name.startswith("markov_"):
        return "markov-weights" if name.endswith("_weights") else "markov"
    if name.startswith("tofu_truth_ratio"):
        return "tofu-truth-ratio"
    if name.startswith("tofu_weights"):
        return "tofu-weights"
    if name.startswith("muse_table"):
        return "muse-table"
    return {
        "tofu_quality_utility": "tofu-quality-utility",
        "tofu_epochs": "tofu-epochs",
        "muse_privleak_utility": "muse-privleak-utility",
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
            "eval or relearn runs"
        )
    return available


def write_figures(selected: dict[str, Callable], out: Path) -> list[Path]:
    """Draw each selected figure into ``out`` as PNG and PDF."""
    paths = []
    for name, draw in selected.items():
        paths += save_figure(draw(), out, name)
    return paths
