"""Every figure kind rendered from small real runs, and `simnpo plot` on folders with nothing to plot."""

import pytest
from typer.testing import CliRunner

from simnpo.analysis.muse import muse_records, plot_privleak_utility
from simnpo.analysis.plots import KINDS, figures, kind_of, load_run
from simnpo.analysis.tofu import plot_quality_utility, tofu_records
from simnpo.analysis.wmdp import plot_forget_utility, plot_relearning, wmdp_records
from simnpo.cli import app

runner = CliRunner()


def test_records_of_an_llm_run(small_runs):
    records = tofu_records(small_runs / "llm")
    assert {r["model"] for r in records["models"]} == {"retain", "target", "npo_nll", "simnpo_nll"}
    assert sorted({h["epoch"] for h in records["history"]}) == [1, 2]
    assert {c["model"] for c in records["relearn"]} == {"npo_nll", "simnpo_nll"}


def test_records_of_a_muse_run(small_runs):
    records = muse_records(small_runs / "muse")
    assert [r["model"] for r in records] == ["retrain", "target", "npo_nll", "simnpo_nll"]
    assert records[0]["privleak"] == 0.0 and all(r["knowmem_r"] is not None for r in records)
    assert tofu_records(small_runs / "muse") == {"models": [], "history": [], "relearn": []}


def test_records_of_a_wmdp_run(small_runs):
    records = wmdp_records(small_runs / "wmdp")
    assert [r["model"] for r in records["models"]] == ["target", "rmu", "simnpo_nll"]
    assert all(r["tasks"] == ["wmdp_bio", "mmlu"] and r["wmdp_cyber"] is None for r in records["models"])
    assert {c["model"] for c in records["relearn"]} == {"rmu", "simnpo_nll"}
    assert records["relearn"][0]["steps"] == [0, 2] and len(records["relearn"][0]["wmdp_bio"]) == 2
    assert muse_records(small_runs / "wmdp") == [] and tofu_records(small_runs / "wmdp")["models"] == []
    # one panel per task scored (Bio and MMLU), not per task WMDP has
    assert len(plot_relearning(records["relearn"]).axes) == 2 and len(plot_forget_utility(records["models"]).axes) == 1


def test_trade_off_figures_draw_each_methods_path_from_the_target(small_runs):
    """One line per method through its evaluations, starting at the target's point (TOFU: 2 epochs evaluated;
    MUSE: 1)."""
    llm, muse_run = load_run(small_runs / "llm"), load_run(small_runs / "muse")
    for fig, start, points in (
        (plot_quality_utility(llm["models"], llm["history"]), "model_utility", 3),
        (plot_privleak_utility(muse_run["muse"], muse_run["muse_history"]), "knowmem_r", 2),
    ):
        lines = [line for line in fig.axes[0].lines if (line.get_gid() or "").startswith("path")]
        assert len(lines) == 2  # NPO and SimNPO
        records = llm["models"] if start == "model_utility" else muse_run["muse"]
        target = next(r for r in records if r["model"] == "target")
        for line in lines:
            assert len(line.get_xdata()) == points and line.get_xdata()[0] == target[start]
        # the best-point rule's utility floor: 95 % of the target's (TOFU), 90 % of the retrain model's (MUSE)
        (floor,) = [line for line in fig.axes[0].lines if line.get_gid() == "utility floor"]
        retrain = next((r for r in records if r["model"] == "retrain"), None)
        share, base = (0.95, target) if start == "model_utility" else (0.9, retrain)
        assert floor.get_xdata()[0] == pytest.approx(share * base[start])


def test_one_loader_reads_every_kind_of_run(small_runs):
    markov, llm, muse_run = (load_run(small_runs / name) for name in ("markov", "llm", "muse"))
    assert markov["markov"]["points"][0]["cases"] and not markov["models"] and not markov["muse"]
    assert (
        llm["markov"] is None and llm["models"] and llm["relearn"] and set(llm["trainers"]) == {"npo_nll", "simnpo_nll"}
    )
    assert muse_run["muse"] and not muse_run["models"] and not muse_run["history"]


def test_every_figure_kind_renders_from_real_runs(small_runs, tmp_path):
    out = tmp_path / "figs"
    folders = [str(small_runs / name) for name in ("markov", "llm", "muse", "wmdp")]
    result = runner.invoke(app, ["plot", *folders, "--out", str(out)])
    assert result.exit_code == 0, result.output
    names = {p.stem for p in out.iterdir()}
    assert {kind_of(n) for n in names} == set(KINDS)
    for path in out.iterdir():
        assert path.stat().st_size > 5000
        assert path.read_bytes()[:4] in (b"\x89PNG", b"%PDF")
        assert f"wrote {path}" in result.output


def test_a_kind_selects_its_figures(small_runs, tmp_path):
    result = runner.invoke(app, ["plot", str(small_runs / "llm"), "--kind", "relearn", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["relearn.pdf", "relearn.png"]


def test_nothing_to_plot_is_said_clearly(tmp_path):
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["plot", str(tmp_path / "empty"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "nothing to plot" in result.output and not (tmp_path / "out").exists()
    result = runner.invoke(app, ["plot", str(tmp_path / "empty"), "--kind", "pie"])
    assert result.exit_code == 2 and "unknown figure kind 'pie'" in result.output
    assert figures([tmp_path / "empty"]) == {}


def test_truth_ratio_legend_reports_forget_quality_per_subset(small_runs):
    from simnpo.analysis.tofu import plot_truth_ratio_memorisation

    fig = plot_truth_ratio_memorisation(tofu_records(small_runs / "llm")["models"])
    labels = [t.get_text() for ax in fig.axes for t in ax.get_legend().get_texts()]
    assert len(labels) == 2 * 3 and all("forget quality" in label for label in labels)
    retain = [label for label in labels if label.startswith("retain")]
    assert all(label.endswith("(forget quality 1)") for label in retain)  # the reference against itself


def test_a_corrupt_results_file_is_one_line_naming_it(tmp_path):
    """Found while trying it: `simnpo plot` printed the JSON parser's message without the file's name."""
    from typer.testing import CliRunner

    from simnpo.cli import app

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "results.json").write_text('{"kind": "markov", "cases": {')
    result = CliRunner().invoke(app, ["plot", str(tmp_path / "run"), "--out", str(tmp_path / "plots")])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert f"{tmp_path / 'run' / 'results.json'} is not valid JSON" in result.output
    assert not (tmp_path / "plots").exists()


def test_trade_off_figure_takes_any_number_of_methods():
    """Every method of the table, and one a user added, drawn in a colour of its own with its own legend entry."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_hex

    from simnpo.analysis.style import METHOD_COLORS, method_color, method_label
    from simnpo.losses import METHODS

    names = ["target", "retain", *METHODS, "my_method"]
    models = [
        {"run": "r", "model": n, "model_utility": 0.5 + i / 100, "forget_quality": 0.1} for i, n in enumerate(names)
    ]
    history = [{**m, "epoch": e} for m in models[2:] for e in (1, 2)]
    fig = plot_quality_utility(models, history)
    points = fig.axes[0].collections
    colours = [to_hex(p.get_facecolor()[0]) for p in points]
    assert len(points) == len(names) and len(set(colours)) == len(names)
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()][-6:-1] == [
        "UNDIAL",
        "WGA",
        "SatImp",
        "CE-U",
        "PDU",
    ]
    assert method_color("my_method") == method_color("my_method") not in METHOD_COLORS.values()
    assert method_label("wga_nll") == "WGA+NLL"
    paths = [line for line in fig.axes[0].lines if (line.get_gid() or "").startswith("path")]
    assert len(paths) == len(names) - 2
    plt.close(fig)
