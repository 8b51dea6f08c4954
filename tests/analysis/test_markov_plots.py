"""Markov figures and tables: from hand-built results of the sweep schema, and from a small real run."""

import numpy as np
import pytest

from simnpo.analysis.markov import (
    load_markov_results,
    markov_figures,
    plot_trajectories,
    summary_rows,
    write_markov_figures,
)
from simnpo.analysis.robustness import paired_findings, robustness_rows

NAMES = ("retain", "forget1", "forget2")


def entry(per_seed) -> dict:
    values = np.asarray(per_seed, dtype=float)
    return {"mean": values.mean(0).tolist(), "std": values.std(0).tolist(), "seeds": values.tolist()}


def hand_made(points=((1.0, 5e-4),), seeds=2, cases=("difficulty", "length")) -> dict:
    """Every point and case with NPO and SimNPO over three evaluation points; seed s shifts every KL by 0.1·s."""
    chains = [{"name": n, "length": 20, "pretrain": True} for n in NAMES]
    shift = np.arange(seeds)[:, None] * 0.1
    kl = {n: entry(shift + [[0.01, 0.1, 0.3], [0.05, 0.5, 1.5], [0.05, 0.4, 1.2]][i]) for i, n in enumerate(NAMES)}
    weights = {w: {n: entry([[1.0, 0.5, 0.2]] * seeds) for n in NAMES[1:]} for w in ("npo", "simnpo")}
    run = {"iterations": [0, 5, 10], "kl": kl, "weights": weights, "loss": [1.0, 0.5, 0.2]}
    reference = {
        p: {n: entry([0.2 + 0.1 * s for s in range(seeds)]) for n in NAMES} for p in ("pretrained", "retrained")
    }
    case = {
        "chains": chains,
        "seeds": list(range(seeds)),
        "reference": reference,
        "methods": {"npo": run, "simnpo": run},
    }
    cases_of = {
        c: {**case, "chains": chains if c == "difficulty" else [*chains[:2], {**chains[2], "length": 5}]} for c in cases
    }
    return {"kind": "markov", "points": [{"beta": b, "lr": lr, "cases": cases_of} for b, lr in points]}


def test_one_point_and_one_seed_keep_todays_figure_names(tmp_path):
    paths = write_markov_figures(hand_made(seeds=1, cases=("length",)), tmp_path)
    assert sorted(p.name for p in paths) == sorted(
        f"markov_length{s}.{ext}" for s in ("", "_weights") for ext in ("png", "pdf")
    )


def test_a_sweep_names_each_points_figures_and_adds_the_robustness_map():
    results = hand_made(points=((1.0, 5e-4), (2.0, 5e-4), (2.0, 1e-3)), cases=("difficulty",))
    assert sorted(markov_figures(results)) == sorted(
        [
            f"markov_difficulty_beta{b}_lr{lr}{s}"
            for b, lr in (("1", "0.0005"), ("2", "0.0005"), ("2", "0.001"))
            for s in ("", "_weights")
        ]
        + ["markov_robustness"]
    )


def test_trajectories_over_seeds_draw_a_band_and_name_the_point():
    results = hand_made(points=((1.0, 5e-4), (2.0, 5e-4)), seeds=2)
    point = results["points"][1]
    fig = plot_trajectories(point, "length", show_setting=True)
    ax = fig.axes[0]
    assert ax.get_title() == "length case: unlearning trajectories\n(2 seeds, mean ± std, β 2, lr 0.0005)"
    bands = [c for c in ax.collections if (c.get_gid() or "").startswith("band")]
    assert sorted(b.get_gid() for b in bands) == sorted(f"band {m} {c}" for m in ("npo", "simnpo") for c in NAMES[1:])
    # the mean line of forget1 over seeds 0 and 1 (values v and v + 0.1) along the mean retain KL
    line = next(line for line in ax.lines if line.get_label() == "NPO, forget1")
    assert line.get_xdata().tolist() == pytest.approx([0.06, 0.15, 0.35])
    assert line.get_ydata().tolist() == pytest.approx([0.10, 0.55, 1.55])
    one = plot_trajectories(hand_made(seeds=1)["points"][0], "length")
    assert not one.axes[0].collections and one.axes[0].get_title().endswith("\n(1 seed)")


def test_summary_rows_name_the_point_when_there_are_several():
    rows = summary_rows(hand_made(points=((1.0, 5e-4), (2.0, 5e-4)), cases=("difficulty",)))
    assert [r[1] for r in rows] == [
        "pretrained",
        "retrained",
        "npo @10, β 1, lr 0.0005",
        "simnpo @10, β 1, lr 0.0005",
        "npo @10, β 2, lr 0.0005",
        "simnpo @10, β 2, lr 0.0005",
    ]
    assert rows[2][2:] == ["0.350 ± 0.050", "1.550 ± 0.050", "1.250 ± 0.050"]
    assert [r[1] for r in summary_rows(hand_made(seeds=1, cases=("length",)))][2:] == ["npo @10", "simnpo @10"]


def test_a_results_file_from_before_sweeps_says_to_rerun(tmp_path):
    (tmp_path / "results.json").write_text('{"kind": "markov", "cases": {}}')
    with pytest.raises(ValueError, match="written by an older simnpo; run `simnpo markov` again"):
        load_markov_results(tmp_path)


def test_loading_a_folder_without_results_says_so(tmp_path):
    with pytest.raises(ValueError, match="holds no results.json of a Markov run"):
        load_markov_results(tmp_path)


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A tiny real run: 2 seeds, β 1 and 5 at one lr, evaluation every 2 of 4 iterations."""
    from simnpo.markov.experiment import ExperimentConfig, Sweep, run_experiment
    from simnpo.markov.model import ModelConfig
    from simnpo.markov.train import TrainConfig, unlearn_config

    folder = tmp_path_factory.mktemp("markov")
    run_experiment(
        ExperimentConfig(retain_samples=200, forget_samples=100, seeds=(0, 1)),
        ModelConfig(n_layer=2, d_model=32, d_mlp=32),
        TrainConfig(epochs=1),
        unlearn_config(("npo", "simnpo", "simnpo_nll"), iterations=4, eval_every=2),
        folder,
        None,
        sweep=Sweep(betas=(1.0, 5.0), lrs=(5e-4,)),
    )
    return folder


def test_figures_render_from_results_on_disk(run_folder, tmp_path):
    results = load_markov_results(run_folder)
    assert [(p["beta"], p["lr"]) for p in results["points"]] == [(1.0, 5e-4), (5.0, 5e-4)]
    assert results["points"][0]["cases"]["length"]["methods"]["npo"]["iterations"] == [0, 2, 4]
    paths = write_markov_figures(results, tmp_path)
    stems = [
        f"markov_{case}_beta{beta}_lr0.0005{suffix}"
        for case in ("difficulty", "length")
        for beta in (1, 5)
        for suffix in ("", "_weights")
    ]
    assert sorted(p.name for p in paths) == sorted(
        f"{s}.{e}" for s in [*stems, "markov_robustness"] for e in ("png", "pdf")
    )
    assert all(p.stat().st_size > 1000 for p in paths)


def test_paired_findings_and_tables_of_a_real_run(run_folder):
    results = load_markov_results(run_folder)
    found = paired_findings(results)
    assert [(f["beta"], f["case"], f["chain"], f["level"]) for f in found] == [
        (beta, case, chain, level)
        for beta in (1.0, 5.0)
        for case, chain in (("difficulty", "forget1"), ("length", "forget2"))
        for level in ("retrained", "2× retrained")
    ]
    assert all(f["n"] + f["excluded"] == 2 and len(f["levels"]) == 2 for f in found)
    assert len(robustness_rows(results)) == len(found)
    rows = summary_rows(results)
    # per case: the two references, then 3 methods at each of the 2 points
    assert len(rows) == 2 * (2 + 2 * 3) and all(len(r) == 2 + 3 for r in rows)


def test_simnpo_plot_finds_every_points_figures_in_a_run_folder(tmp_path):
    from simnpo.analysis.plots import figures, kind_of, select
    from simnpo.runs import MARKOV_RESULTS_FILE, write_json

    write_json(tmp_path / MARKOV_RESULTS_FILE, hand_made(points=((1.0, 5e-4), (5.0, 5e-4)), cases=("length",)))
    names = figures([tmp_path])
    assert sorted(names) == sorted(markov_figures(load_markov_results(tmp_path)))
    assert {n: kind_of(n) for n in names} == {
        "markov_length_beta1_lr0.0005": "markov",
        "markov_length_beta1_lr0.0005_weights": "markov-weights",
        "markov_length_beta5_lr0.0005": "markov",
        "markov_length_beta5_lr0.0005_weights": "markov-weights",
        "markov_robustness": "markov",
    }
    assert sorted(select([tmp_path], ("markov-weights",))) == [
        "markov_length_beta1_lr0.0005_weights",
        "markov_length_beta5_lr0.0005_weights",
    ]
