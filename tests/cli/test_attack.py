"""`simnpo attack quantize|relearn|all` on a `simnpo llm` run: what each writes, that the full-precision numbers are
the run's own, that the quantized ones come from quantized models, and one line for each bad input."""

import json
import shutil
import sys

import pytest
from typer.testing import CliRunner

from simnpo.cli import app

pytest.importorskip("bitsandbytes")
runner = CliRunner()
METHODS = ["npo_nll", "simnpo_nll"]


@pytest.fixture
def run(small_runs, tmp_path):
    """A copy of the session's small `simnpo llm` run (tests/conftest.py), so attacks write beside it freely."""
    folder = tmp_path / "llm"
    shutil.copytree(small_runs / "llm", folder, ignore=shutil.ignore_patterns("relearn", "quantize"))
    return folder


def read(path):
    return json.loads(path.read_text())


def test_quantize_evaluates_the_target_and_every_unlearned_model_at_each_precision(run):
    result = runner.invoke(app, ["attack", "quantize", str(run), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    report = read(run / "quantize" / "quantize.json")
    assert report["conditions"] == ["full", "int8", "fp4"] and list(report["models"]) == ["target", *METHODS]
    # full precision: the numbers the run itself wrote (the target's, and each method's evaluation after its last epoch)
    assert (
        report["models"]["target"]["full"]["forget_Q_A_Prob"]
        == read(run / "target" / "TOFU_SUMMARY.json")["forget_Q_A_Prob"]
    )
    last = read(run / "npo_nll" / "history.json")[-1]
    assert report["models"]["npo_nll"]["full"]["forget_Q_A_Prob"] == pytest.approx(last["forget_Q_A_Prob"])
    for model in report["models"]:
        for precision in ("int8", "fp4"):
            assert (run / "quantize" / model / precision / "TOFU_EVAL.json").is_file()
    # the premise: 4 bits changed what the model gives each forget item
    full = read(run / "target" / "TOFU_EVAL.json")["forget_Q_A_Prob"]["value_by_index"]
    fp4 = read(run / "quantize" / "target" / "fp4" / "TOFU_EVAL.json")["forget_Q_A_Prob"]["value_by_index"]
    assert any(full[i]["prob"] != pytest.approx(fp4[i]["prob"], rel=1e-6) for i in full)
    assert set(report["recovered"]) == set(METHODS) and report["holds_best"] in (*METHODS, None)
    assert "changed_weights" not in report["models"]["target"]["fp4"]  # the unlearned models against the target
    assert report["models"]["npo_nll"]["full"]["changed_weights"] == 1.0  # unlearning moved every weight a little
    assert (
        0
        < report["models"]["npo_nll"]["fp4"]["changed_weights"]
        < report["models"]["npo_nll"]["int8"]["changed_weights"]
    )  # fewer leave their bucket at 4 bits than at 8
    assert "npo_nll: quantization attack on TOFU" in result.output and "4-bit FP4" in result.output
    assert (run / "quantize" / "quantize.png").is_file()
    assert not any(run.rglob(".simnpo.lock"))  # the run folder and the attack's are free again
    assert read(run / "quantize" / "config.json")["configs"]["quantize"]["bits"] == [8, 4]
    again = runner.invoke(app, ["attack", "quantize", str(run), "--device", "cpu"])  # resumes: read back
    assert again.exit_code == 0 and read(run / "quantize" / "quantize.json")["models"] == report["models"]
    other = runner.invoke(app, ["attack", "quantize", str(run), "--int8-threshold", "0"])
    assert other.exit_code == 2 and "holds a run with a different configuration" in other.output
    plotted = runner.invoke(app, ["plot", str(run), "--kind", "attacks", "--out", str(run / "figures")])
    assert plotted.exit_code == 0 and (run / "figures" / "attack_quantize_quantize.png").is_file()


def test_attack_all_writes_one_robustness_report(run):
    args = ["attack", "all", str(run), "--steps", "2", "--eval-at", "0,2", "--lr", "1e-3", "--bits", "4"]
    result = runner.invoke(app, args + ["--four-bit-type", "nf4", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    report = read(run / "robustness.json")
    assert report["conditions"] == ["full", "relearned", "nf4"] and report["relearn"]["steps"] == 2
    for method in METHODS:
        curve = read(run / "relearn" / method / "relearn.json")
        assert report["models"][method]["relearned"]["forget_Q_A_Prob"] == curve["forget_Q_A_Prob"][-1]
        assert {"forget_Q_A_Prob", "model_utility", "changed_weights"} <= set(report["models"][method]["nf4"])
        assert set(report["recovered"][method]) == {"relearned", "nf4"}
    assert "simnpo_nll: robustness on TOFU" in result.output and "relearned" in result.output
    assert (run / "robustness.png").is_file() and (run / "quantize" / "target" / "nf4" / "TOFU_EVAL.json").is_file()


def test_attack_relearn_is_simnpo_relearn(run, tmp_path):
    args = [str(run), "--steps", "1", "--eval-at", "0,1", "--max-new-tokens", "2"]
    for command, out in ((["attack", "relearn"], tmp_path / "a"), (["relearn"], tmp_path / "b")):
        result = runner.invoke(app, [*command, *args, "--out", str(out)])
        assert result.exit_code == 0, result.output
    assert read(tmp_path / "a" / "npo_nll" / "relearn.json") == read(tmp_path / "b" / "npo_nll" / "relearn.json")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--bits", "3"], "4 or 8 bits"),
        (["--bits", "four"], "--bits takes comma-separated int values"),
        (["--four-bit-type", "int4"], "fp4 or nf4"),
        (["--device", "tpu"], "--device must be auto, cpu or cuda"),
        (["--compute-dtype", "int8"], "--compute-dtype must be float32, bfloat16 or float16"),
    ],
)
def test_bad_settings_are_one_line_and_write_nothing(run, args, message):
    result = runner.invoke(app, ["attack", "quantize", str(run), *args])
    assert result.exit_code == 2 and message in result.output and len(result.output.strip().splitlines()) == 1
    assert not (run / "quantize").exists()


def test_a_folder_without_unlearned_models_is_one_line(run, tmp_path):
    for method in METHODS:
        shutil.rmtree(run / method / "model")
    for command in (["attack", "quantize"], ["attack", "all"]):
        result = runner.invoke(app, [*command, str(run)])
        assert result.exit_code == 2 and "holds no finished unlearned model" in result.output
    assert not (run / "quantize").exists() and not (run / "relearn").exists()
    result = runner.invoke(app, ["attack", "quantize", str(tmp_path / "nothing")])
    assert result.exit_code == 2 and "is not a `simnpo llm` run folder" in result.output


def test_without_bitsandbytes_the_attack_names_the_extra(run, monkeypatch):
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # an import of it now raises ImportError
    result = runner.invoke(app, ["attack", "quantize", str(run)])
    assert result.exit_code == 2 and "pip install 'simnpo[quantize]'" in result.output
    assert not (run / "quantize").exists()


def test_an_unknown_attack_is_refused():
    result = runner.invoke(app, ["attack", "prune", "runs/x"])
    assert result.exit_code == 2 and "No such command 'prune'" in result.output
