"""`simnpo markov` end to end on a tiny setting, and its one-line errors."""

import json

import pytest
from typer.testing import CliRunner

from simnpo.cli import app

runner = CliRunner()
VERDICTS = ("holds", "reversed", "inconclusive")
TINY = ["--retain-samples", "200", "--forget-samples", "100", "--steps", "3", "--pretrain-epochs", "1"]


def test_markov_command_writes_results_figures_and_table(tmp_path):
    out, cache = tmp_path / "run", tmp_path / "cache"
    args = ["markov", "--chains", "3", *TINY, "--out", str(out), "--cache-dir", str(cache)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    assert set(results["points"][0]["cases"]) == {"difficulty", "length"}
    for name in ("markov_difficulty.png", "markov_length.pdf", "markov_length_weights.png"):
        assert (out / name).stat().st_size > 1000
    config = json.loads((out / "config.json").read_text())
    losses = config["configs"]["unlearning"]["losses"]
    assert [(loss["method"], loss["beta"]) for loss in losses] == [("npo", 1.0), ("simnpo", 1.0)]
    assert config["seed"] == [42]
    assert "KL to the true chains" in result.output
    # difficulty/forget1 and length/forget2, each at two levels; one seed cannot decide
    assert result.output.count("inconclusive") == 4
    # the same command on the same folder resumes and changes nothing
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "resuming" in again.output
    assert json.loads((out / "results.json").read_text()) == results


def test_a_sweep_over_betas_and_seeds_prints_paired_verdicts_and_resumes(tmp_path):
    out, cache = tmp_path / "run", tmp_path / "cache"
    args = ["markov", *TINY, "--case", "length", "--betas", "1,5", "--seeds", "0-2", "--eval-every", "2"]
    args += ["--out", str(out), "--cache-dir", str(cache)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "seed 2: unlearn (4 runs)" in result.output  # the progress of each seed's cells
    points = json.loads((out / "results.json").read_text())["points"]
    assert [p["beta"] for p in points] == [1.0, 5.0] and points[0]["cases"]["length"]["seeds"] == [0, 1, 2]
    assert points[1]["cases"]["length"]["methods"]["npo"]["iterations"] == [0, 2, 3]
    assert (out / "parts" / "length" / "seed2" / "beta5_lr0.0005" / "simnpo.json").is_file()
    for name in (
        "markov_robustness.png",
        "markov_length_beta5_lr0.0005.png",
        "markov_length_beta1_lr0.0005_weights.pdf",
    ):
        assert (out / name).stat().st_size > 1000
    # per β one row per level, each with a verdict from three seeds
    verdicts = [line for line in result.output.splitlines() if "forget2" in line and "0.0005" in line]
    assert len(verdicts) == 4 and all(any(v in line for v in VERDICTS) for line in verdicts)
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "resuming" in again.output and ": unlearn" not in again.output


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
        (["--beta", "0"], "every β must be a finite number > 0"),
        (["--betas", "0.5,1,-2"], "every β must be a finite number > 0"),
        (["--lr", "1e-3,x"], "--lr takes comma-separated float values"),
        (["--seeds", "4-2"], "the range 4-2 is empty"),
        (["--seeds", ""], "give at least one seed"),
        (["--seeds", "0-x"], "--seeds takes seeds and ranges"),
        (["--steps", "5", "--eval-every", "6"], "--eval-every must be between 1 and the 5 steps"),
        (["--methods", "npo,dpo"], "unknown method 'dpo'"),
        (["--case", "width"], "cases must be among"),
        (["--device", "cuda:0"], "this machine has no GPU"),
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


def test_every_method_defined_on_sequences_runs_and_the_others_are_refused(tmp_path):
    methods = "ga,graddiff,npo,npo_nll,npo_kl,simnpo,simnpo_nll,simnpo_kl,undial,wga,satimp,ceu,pdu"
    args = ["markov", "--chains", "3", *TINY, "--methods", methods, "--case", "length", "--out", str(tmp_path / "run")]
    result = runner.invoke(app, [*args, "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    (point,) = json.loads((tmp_path / "run" / "results.json").read_text())["points"]
    assert list(point["cases"]["length"]["methods"]) == methods.split(",")
    for method, message in (("idkpo", "refusal answers"), ("rmu", "a layer's activations")):
        result = runner.invoke(app, ["markov", "--methods", method, "--out", str(tmp_path / method)])
        assert result.exit_code == 2 and message in result.output and not (tmp_path / method).exists()
