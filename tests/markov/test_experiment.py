"""Whole experiments on tiny settings: K = 2, 3, 5, seeds, sweeps, determinism, resume, the retrained oracle."""

import json

import pytest

from simnpo.markov.experiment import ExperimentConfig, Sweep, run_experiment
from simnpo.markov.model import ModelConfig
from simnpo.markov.train import TrainConfig, UnlearnConfig, unlearn_config

TINY_MODEL = ModelConfig(n_layer=2, d_model=32, d_mlp=32)
TINY_TRAIN = TrainConfig(epochs=1, batch_size=64, lr=3e-3)


def tiny(chains=3, **kw):
    return ExperimentConfig(chains=chains, retain_samples=200, forget_samples=100, **kw)


def run(folder, exp, unlearn=UnlearnConfig(iterations=3), cache=None, sweep=None):
    return run_experiment(exp, TINY_MODEL, TINY_TRAIN, unlearn, folder, cache, sweep=sweep)


def cases(results, point=0):
    return results["points"][point]["cases"]


@pytest.mark.parametrize("chains", [2, 5])
def test_other_numbers_of_chains_run(tmp_path, chains):
    results = run(tmp_path, tiny(chains))
    for case in ("difficulty", "length"):
        entry = cases(results)[case]
        assert len(entry["chains"]) == chains
        for method in ("npo", "simnpo"):
            kl = entry["methods"][method]["kl"]
            assert set(kl) == {c["name"] for c in entry["chains"]}
            assert all(len(v["mean"]) == 4 for v in kl.values())  # iterations 0..3


def test_same_seed_same_numbers_and_seeds_give_spread(tmp_path):
    exp = tiny(cases=("length",), seeds=(1, 2))
    a = run(tmp_path / "a", exp)
    b = run(tmp_path / "b", exp)
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    forget1 = cases(a)["length"]["methods"]["simnpo"]["kl"]["forget1"]
    assert len(forget1["seeds"]) == 2 and forget1["seeds"][0] != forget1["seeds"][1]
    assert forget1["std"][-1] > 0 and forget1["mean"][-1] == pytest.approx(sum(s[-1] for s in forget1["seeds"]) / 2)


def test_a_killed_run_resumes_without_redoing_finished_work(tmp_path):
    exp = tiny(cases=("difficulty",))
    full = run(tmp_path, exp)
    parts = tmp_path / "parts" / "difficulty" / "seed42" / "beta1_lr0.0005"
    kept = (parts / "npo.json").stat().st_mtime_ns
    (parts / "simnpo.json").unlink()  # as if killed before SimNPO finished
    resumed = run(tmp_path, exp)
    assert (parts / "npo.json").stat().st_mtime_ns == kept
    assert json.dumps(resumed, sort_keys=True) == json.dumps(full, sort_keys=True)


def test_a_sweep_reuses_each_seeds_models_and_resumes_cell_by_cell(tmp_path):
    cache, folder = tmp_path / "cache", tmp_path / "run"
    exp, sweep = tiny(cases=("length",), seeds=(0, 1)), Sweep(betas=(1.0, 4.0), lrs=(5e-4, 2e-3))
    unlearn = unlearn_config(("npo", "simnpo"), iterations=4, eval_every=2)
    full = run(folder, exp, unlearn, cache, sweep)
    assert [(p["beta"], p["lr"]) for p in full["points"]] == [(1.0, 5e-4), (1.0, 2e-3), (4.0, 5e-4), (4.0, 2e-3)]
    assert len(list(cache.glob("*.pt"))) == 2 * 2  # per seed one pretrained and one retrained model, for 4 points
    for point in full["points"]:
        simnpo = point["cases"]["length"]["methods"]["simnpo"]
        assert simnpo["iterations"] == [0, 2, 4] and len(simnpo["kl"]["forget2"]["seeds"]) == 2
    # the points differ (β and lr reach the losses), and the starting points are the same pretrained model
    last = [p["cases"]["length"]["methods"]["simnpo"]["kl"]["forget1"]["mean"] for p in full["points"]]
    assert len({round(x[-1], 9) for x in last}) == 4 and len({x[0] for x in last}) == 1
    cell = folder / "parts" / "length" / "seed1" / "beta4_lr0.002" / "npo.json"
    others = sorted((folder / "parts").rglob("*.json"))
    stamps = {p: p.stat().st_mtime_ns for p in others if p != cell}
    cell.unlink()  # as if killed before this cell finished
    resumed = run(folder, exp, unlearn, cache, sweep)
    assert cell.is_file() and all(p.stat().st_mtime_ns == t for p, t in stamps.items())
    assert json.dumps(resumed, sort_keys=True) == json.dumps(full, sort_keys=True)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"betas": (0.5, -1.0)}, "every β must be a finite number > 0"),
        ({"betas": ()}, "every β must be a finite number > 0, got none"),
        ({"lrs": (0.0,)}, "every lr must be a finite number > 0"),
        ({"betas": (1.0, 1.0)}, "given twice"),
    ],
)
def test_bad_sweeps(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Sweep(**kwargs)


def test_pretrained_and_retrained_models_are_cached_and_shared(tmp_path):
    cache = tmp_path / "cache"
    run(tmp_path / "run", tiny(), cache=cache)
    # difficulty and length pretrain on different data; the retain-only model is the same for both cases
    assert len(list(cache.glob("*.pt"))) == 3
    run(tmp_path / "again", tiny(), cache=cache)
    assert len(list(cache.glob("*.pt"))) == 3


def test_reference_points_and_gradient_weights(tmp_path):
    results = run(tmp_path, tiny(cases=("difficulty",), kl_to_retrained=True))
    entry = cases(results)["difficulty"]
    ref = entry["reference"]
    assert ref["retain_only_exact"]["retain"]["mean"] == pytest.approx(0.0, abs=1e-6)
    # the unseen forget2 is "already unlearned": far from the true chain for both models
    assert ref["pretrained"]["forget2"]["mean"] > ref["pretrained"]["forget1"]["mean"]
    npo = entry["methods"]["npo"]
    assert npo["weights"]["npo"]["forget1"]["mean"][0] == pytest.approx(1.0)  # θ = θ_ref at iteration 0
    assert len(npo["weight_examples"]["simnpo"]["forget1"]["examples"][0]) == 8
    assert npo["kl_retrained"]["retain"]["mean"][0] >= 0


def test_retrained_forget_kl_is_close_to_the_exact_retain_only_kl(tmp_path):
    exp = ExperimentConfig(cases=("length",), retain_samples=3000, forget_samples=100)
    results = run_experiment(
        exp,
        ModelConfig(n_layer=2, d_model=64, d_mlp=64),
        TrainConfig(epochs=3, lr=2e-3),
        unlearn_config(("simnpo",), iterations=1),
        tmp_path,
        None,
    )
    ref = cases(results)["length"]["reference"]
    for chain in ("forget1", "forget2"):
        assert ref["retrained"][chain]["mean"] == pytest.approx(ref["retain_only_exact"][chain]["mean"], rel=0.15)
    assert ref["retrained"]["retain"]["mean"] < 0.05


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"cases": ("width",)}, "cases must be among"),
        ({"seeds": ()}, "at least one seed"),
        ({"chains": 1}, "at least 2"),
        ({"short_length": 1}, "has length 1"),
    ],
)
def test_bad_experiment_configs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ExperimentConfig(**kwargs)
