"""`simnpo markov` end to end on a tiny setting, and its one-line errors."""

import json

import pytest
from typer.testing import CliRunner

from simnpo.cli import app

runner = CliRunner()
TINY = ["--retain-samples", "200", "--forget-samples", "100", "--iterations", "3", "--pretrain-epochs", "1"]


def test_markov_command_writes_results_figures_and_table(tmp_path):
    out, cache = tmp_path / "run", tmp_path / "cache"
    args = ["markov", "--chains", "3", *TINY, "--out", str(out), "--cache-dir", str(cache)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    assert set(results["cases"]) == {"difficulty", "length"}
    for name in ("markov_difficulty.png", "markov_length.pdf", "markov_length_weights.png"):
        assert (out / name).stat().st_size > 1000
    config = json.loads((out / "config.json").read_text())
    losses = config["configs"]["unlearning"]["losses"]
    assert [(loss["method"], loss["beta"]) for loss in losses] == [("npo", 1.0), ("simnpo", 1.0)]
    assert config["seed"] == [42]
    assert "KL to the true chains" in result.output
    assert result.output.count("finding ") == 2  # difficulty/forget1 and length/forget2
    # the same command on the same folder resumes and changes nothing
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "resuming" in again.output
    assert json.loads((out / "results.json").read_text()) == results


def test_a_different_configuration_in_the_same_folder_is_refused(tmp_path):
    args = ["markov", *TINY, "--case", "length", "--methods", "simnpo", "--out", str(tmp_path), "--no-cache"]
    assert runner.invoke(app, args).exit_code == 0
    result = runner.invoke(app, [*args, "--beta", "2"])
    assert result.exit_code == 2 and "different configuration" in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--chains", "1"], "--chains must be at least 2"),
        (["--length", "0"], "has length 0"),
        (["--short-length", "0"], "has length 0"),
        (["--states", "5", "--block-size", "2"], "need 6 states but only 5 exist"),
        (["--beta", "0"], "beta must be a finite number > 0"),
        (["--methods", "npo,dpo"], "unknown method 'dpo'"),
        (["--case", "width"], "cases must be among"),
        (["--device", "cuda:0"], "CUDA is not available"),
        (["--arch", "rnn"], "unknown architecture"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, args, message):
    out = tmp_path / "never"
    result = runner.invoke(app, ["markov", *args, "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert not out.exists()


def test_unwritable_output_folder(tmp_path):
    (tmp_path / "file").write_text("x")
    result = runner.invoke(app, ["markov", "--out", str(tmp_path / "file" / "run")])
    assert result.exit_code == 2 and "cannot write to output folder" in result.output
