"""A method is one loss function and one entry of the method table (docs/architecture.md, "Adding a method"): a toy
method added here, in the test alone, runs through `simnpo llm`, `simnpo markov` and `simnpo relearn`."""

import json

import pytest
from typer.testing import CliRunner

from simnpo import losses as L
from simnpo.cli import app


def mean_ascent(inputs: L.LossInputs, config: L.LossConfig):
    """The toy forget loss: the forget answers' mean log-likelihood per token (β scales it)."""
    return config.beta * (inputs.forget.logps / inputs.forget.lengths).mean()


@pytest.fixture
def toy_method(monkeypatch):
    term = L.Term("toy", mean_ascent, (L.Read("forget", "sequence"),))
    monkeypatch.setitem(L.METHODS, "toy", (term, L.RETAIN_TERMS["nll"]))  # the one table entry
    return "toy"


def test_a_toy_method_runs_through_llm_markov_and_relearn(toy_method, small_runs, tmp_path):
    runner = CliRunner()
    llm = ["llm", "--methods", toy_method, "--finetune-epochs", "3", "--epochs", "1", "--max-new-tokens", "4"]
    result = runner.invoke(app, [*llm, "--cache-dir", str(small_runs / "cache"), "--out", str(tmp_path / "llm")])
    assert result.exit_code == 0, result.output
    (final,) = json.loads((tmp_path / "llm" / "toy" / "history.json").read_text())
    start = json.loads((tmp_path / "llm" / "target" / "TOFU_SUMMARY.json").read_text())
    assert final["forget_Q_A_Prob"] < start["forget_Q_A_Prob"]  # it unlearned
    config = json.loads((tmp_path / "llm" / "config.json").read_text())["configs"]["run"]["trainers"][0]
    assert config["loss"]["method"] == "toy" and config["loss"]["beta"] == 1.0  # the common default β
    result = runner.invoke(app, ["relearn", str(tmp_path / "llm"), "--steps", "2", "--eval-at", "0,2"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "llm" / "relearn" / "toy" / "relearn.json").is_file()
    markov = ["markov", "--methods", toy_method, "--retain-samples", "200", "--forget-samples", "100"]
    markov += ["--steps", "3", "--pretrain-epochs", "1", "--no-cache", "--out", str(tmp_path / "markov")]
    result = runner.invoke(app, markov)
    assert result.exit_code == 0, result.output
    (point,) = json.loads((tmp_path / "markov" / "results.json").read_text())["points"]
    assert all(list(case["methods"]) == ["toy"] for case in point["cases"].values())
