"""`simnpo relearn`: the forget metrics recover as the unlearned model is fine-tuned on forget data."""

import json

import pytest
from scipy.stats import ks_2samp
from typer.testing import CliRunner

from simnpo.cli import app

runner = CliRunner()


@pytest.fixture
def llm_run(small_runs):
    """The session's small `simnpo llm` run (tests/conftest.py): relearned here into other folders."""
    return small_runs / "llm"


def test_relearning_a_run_raises_the_forget_probability(llm_run, tmp_path):
    args = [
        "relearn",
        str(llm_run),
        "--steps",
        "8",
        "--eval-at",
        "0,4,8",
        "--lr",
        "1e-3",
        "--max-new-tokens",
        "4",
        "--out",
        str(tmp_path),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["npo_nll", "simnpo_nll"]
    curves = json.loads((tmp_path / "simnpo_nll" / "relearn.json").read_text())
    assert curves["steps"] == [0, 4, 8] and curves["relearn_items"] == 40
    assert curves["forget_Q_A_Prob"][-1] > curves["forget_Q_A_Prob"][0]
    assert all(v is not None for v in curves["forget_quality"])  # the run's retain model is the reference
    assert (tmp_path / "simnpo_nll" / "step8" / "TOFU_EVAL.json").is_file()
    assert "Relearning on 50% of forget10" in result.output
    # the 40 forget items not relearned, scored on their own (mini-TOFU's forget rows are its evaluation items)
    held = sorted(set(range(80)) - set(curves["relearned_rows"]))
    assert len(held) == 40 and curves["held_out"]["items"] == [40, 40, 40]
    step0 = json.loads((tmp_path / "simnpo_nll" / "step0" / "TOFU_EVAL.json").read_text())
    retain = json.loads((llm_run / "retain" / "TOFU_EVAL.json").read_text())
    ratios = lambda results: [results["forget_truth_ratio"]["value_by_index"][str(i)]["score"] for i in held]  # noqa: E731
    probs = [step0["forget_Q_A_Prob"]["value_by_index"][str(i)]["prob"] for i in held]
    assert curves["held_out"]["forget_Q_A_Prob"][0] == pytest.approx(sum(probs) / 40)
    assert curves["held_out"]["forget_quality"][0] == pytest.approx(ks_2samp(ratios(step0), ratios(retain)).pvalue)
    assert curves["held_out"]["forget_Q_A_Prob"][0] != pytest.approx(curves["forget_Q_A_Prob"][0])


def test_relearning_one_model_without_a_reference(llm_run, tmp_path):
    data = next((llm_run.parent / "cache").iterdir()) / "data"
    args = [
        "relearn",
        "--model",
        str(llm_run / "simnpo_nll" / "model"),
        "--data",
        str(data),
        "--steps",
        "2",
        "--eval-at",
        "0,2",
        "--max-new-tokens",
        "2",
        "--out",
        str(tmp_path),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    curves = json.loads((tmp_path / "model" / "relearn.json").read_text())
    assert curves["forget_quality"] == [None, None]


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "give either a `simnpo llm` run folder or --model"),
        (["--model", "m", "."], "give either"),
        (["--fraction", "0"], "--fraction must lie in (0, 1]"),
        (["--eval-at", "0,80"], "--eval-at steps must lie in"),
    ],
)
def test_bad_relearn_input(llm_run, args, message):
    full = ["relearn", *args] if not args or args[0] == "--model" else ["relearn", str(llm_run), *args]
    result = runner.invoke(app, full)
    assert result.exit_code == 2 and message in result.output, result.output


def test_relearning_a_muse_run_relearns_its_text_and_scores_muse(small_runs, tmp_path):
    """The one driver relearns on any benchmark: a MUSE run's forget chunks, MUSE's metrics."""
    args = ["relearn", str(small_runs / "muse"), "--steps", "2", "--eval-at", "0,2", "--out", str(tmp_path)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    curves = json.loads((tmp_path / "simnpo_nll" / "relearn.json").read_text())
    assert curves["steps"] == [0, 2] and set(curves) >= {"verbmem_f", "knowmem_f", "privleak", "knowmem_r"}
    assert (tmp_path / "simnpo_nll" / "step2" / "MUSE_EVAL.json").is_file()
    assert "Relearning on 50% of MUSE-News D_f" in result.output and "VerbMem before" in result.output
