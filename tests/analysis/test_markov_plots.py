"""Markov figures and findings from a small real run."""

import pytest

from simnpo.analysis.markov import findings, load_markov_results, retain_kl_at, summary_rows, write_markov_figures
from simnpo.markov.experiment import ExperimentConfig, run_experiment
from simnpo.markov.model import ModelConfig
from simnpo.markov.train import TrainConfig, unlearn_config


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("markov")
    exp = ExperimentConfig(retain_samples=200, forget_samples=100)
    run_experiment(
        exp,
        ModelConfig(n_layer=2, d_model=32, d_mlp=32),
        TrainConfig(epochs=1),
        unlearn_config(("npo", "simnpo", "simnpo_nll"), iterations=4),
        folder,
        None,
    )
    return folder


def test_figures_render_from_results_on_disk(run_folder, tmp_path):
    results = load_markov_results(run_folder)
    paths = write_markov_figures(results, tmp_path)
    assert sorted(p.name for p in paths) == sorted(
        f"markov_{case}{suffix}.{ext}"
        for case in ("difficulty", "length")
        for suffix in ("", "_weights")
        for ext in ("png", "pdf")
    )
    assert all(p.stat().st_size > 1000 for p in paths)


def test_findings_and_table(run_folder):
    results = load_markov_results(run_folder)
    found = findings(results)
    assert [(f["case"], f["chain"]) for f in found] == [("difficulty", "forget1"), ("length", "forget2")]
    for f in found:
        assert f["holds"] == (f["retain_kl"]["simnpo"] < f["retain_kl"]["npo"])
    rows = summary_rows(results)
    assert len(rows) == 2 * (2 + 3) and all(len(r) == 2 + 3 for r in rows)


def test_retain_kl_at_interpolates_the_first_crossing():
    assert retain_kl_at([0.0, 1.0, 3.0], [0.1, 0.2, 0.6], 2.0) == pytest.approx(0.4)
    assert retain_kl_at([0.5, 1.0], [0.1, 0.2], 0.2) == pytest.approx(0.1)
    assert retain_kl_at([0.0, 1.0], [0.1, 0.2], 5.0) is None


def test_loading_a_folder_without_results_says_so(tmp_path):
    with pytest.raises(ValueError, match="holds no results.json of a Markov run"):
        load_markov_results(tmp_path)
