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


def test_findings_and_table_of_a_real_run(run_folder):
    results = load_markov_results(run_folder)
    found = findings(results)
    assert [(f["case"], f["chain"]) for f in found] == [("difficulty", "forget1"), ("length", "forget2")]
    rows = summary_rows(results)
    assert len(rows) == 2 * (2 + 3) and all(len(r) == 2 + 3 for r in rows)


def hand_made(npo_forget, npo_retain, simnpo_forget, simnpo_retain, retrained=0.4) -> dict:
    """A difficulty case whose trajectories are given (forget2 unseen, so only forget1 is judged)."""
    chains = [{"name": n, "length": 20, "pretrain": n != "forget2"} for n in ("retain", "forget1", "forget2")]
    kl = lambda forget, retain: {"forget1": {"mean": forget}, "retain": {"mean": retain}}  # noqa: E731
    case = {
        "chains": chains,
        "reference": {"retrained": {"forget1": {"mean": retrained}}},
        "methods": {"npo": {"kl": kl(npo_forget, npo_retain)}, "simnpo": {"kl": kl(simnpo_forget, simnpo_retain)}},
    }
    return {"cases": {"difficulty": case}}


def test_findings_against_hand_computed_crossings():
    # NPO crosses forget KL 0.4 a third of the way from (0.2, 0.1) to (0.8, 0.5): retain KL 0.1 + 0.4/3
    # SimNPO reaches 0.4 at its second point, retain KL 0.05: the finding holds
    (f,) = findings(hand_made([0.0, 0.2, 0.8], [0.0, 0.1, 0.5], [0.0, 0.4, 0.9], [0.0, 0.05, 0.3]))
    assert f["forget_kl"] == 0.4 and f["holds"]
    assert f["retain_kl"] == {"npo": pytest.approx(0.1 + 0.4 / 3), "simnpo": pytest.approx(0.05)}
    # swapped, it is reversed
    (f,) = findings(hand_made([0.0, 0.4, 0.9], [0.0, 0.05, 0.3], [0.0, 0.2, 0.8], [0.0, 0.1, 0.5]))
    assert not f["holds"]
    # SimNPO never reaches 0.4: the level drops to the highest forget KL both reach, 0.3 (NPO at retain 0.1 + 0.2/6)
    (f,) = findings(hand_made([0.0, 0.2, 0.8], [0.0, 0.1, 0.5], [0.0, 0.1, 0.3], [0.0, 0.02, 0.04]))
    assert f["forget_kl"] == 0.3 and f["retain_kl"]["simnpo"] == pytest.approx(0.04)
    assert f["retain_kl"]["npo"] == pytest.approx(0.1 + 0.4 / 6) and f["holds"]


def test_retain_kl_at_interpolates_the_first_crossing():
    assert retain_kl_at([0.0, 1.0, 3.0], [0.1, 0.2, 0.6], 2.0) == pytest.approx(0.4)
    assert retain_kl_at([0.5, 1.0], [0.1, 0.2], 0.2) == pytest.approx(0.1)
    assert retain_kl_at([0.0, 1.0], [0.1, 0.2], 5.0) is None


def test_loading_a_folder_without_results_says_so(tmp_path):
    with pytest.raises(ValueError, match="holds no results.json of a Markov run"):
        load_markov_results(tmp_path)
