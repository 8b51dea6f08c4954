"""`simnpo eval`, `simnpo llm` and `simnpo relearn` with `--bench wmdp` on a given model and a local folder of
WMDP-format files (the real-data path), and bad input: one line, exit 2, nothing written."""

import json
import math
import shutil
import sys

import pytest
from typer.testing import CliRunner

from simnpo.cli import app

pytest.importorskip("lm_eval", reason="the [wmdp] extra (lm-eval) is not installed")

runner = CliRunner()
TASKS = ["--tasks", "wmdp_bio,mmlu"]  # the small folder has no Cyber questions


def test_eval_scores_each_task_of_a_local_folder_by_the_harness(small_wmdp, tmp_path):
    data, model = small_wmdp
    args = ["eval", "--bench", "wmdp", "--model", str(model), "--data", str(data), *TASKS]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "run" / "model" / "WMDP_EVAL.json").read_text())
    for task in ("wmdp_bio", "mmlu"):
        scored = results[task]
        assert scored["n"] == 12 and len(scored["correct"]) == 12 and len(scored["loglikelihoods"][0]) == 4
        assert scored["acc"] == pytest.approx(sum(scored["correct"]) / 12)
        p = scored["acc"]
        assert scored["acc_stderr"] == pytest.approx(math.sqrt(p * (1 - p) / 11))  # the harness's sample stderr
    summary = json.loads((tmp_path / "run" / "model" / "WMDP_SUMMARY.json").read_text())
    assert summary["wmdp_bio"] == results["wmdp_bio"]["acc"] and summary["wmdp_cyber"] is None
    assert "1 − Bio acc" in result.output and "MMLU acc" in result.output and "Cyber" not in result.output
    assert f"{1 - summary['wmdp_bio']:.3f}" in result.output  # hazardous tasks are printed as 1 − accuracy

    quick = runner.invoke(app, [*args, "--limit", "3", "--out", str(tmp_path / "quick")])
    assert quick.exit_code == 0, quick.output
    assert "--limit 3: the first 3 questions of each task" in quick.output
    limited = json.loads((tmp_path / "quick" / "model" / "WMDP_EVAL.json").read_text())
    assert limited["wmdp_bio"]["n"] == 3 and limited["_meta"]["limit"] == 3
    assert limited["wmdp_bio"]["loglikelihoods"] == results["wmdp_bio"]["loglikelihoods"][:3]


def test_llm_unlearns_the_corpora_with_simnpo_and_rmu_and_relearn_reads_the_run(small_wmdp, tmp_path):
    data, model = small_wmdp
    out = tmp_path / "run"
    args = ["llm", "--bench", "wmdp", "--model", str(model), "--data", str(data), *TASKS, "--forget-corpora", "bio"]
    args += ["--retain-corpus", "bio", "--methods", "simnpo_nll,rmu", "--rmu-layer", "2", "--epochs", "1"]
    args += ["--batch-size", "4", "--max-length", "32", "--no-bf16", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    for method in ("simnpo_nll", "rmu"):
        (entry,) = json.loads((out / method / "history.json").read_text())
        assert entry["epoch"] == 1 and entry["tasks"] == ["wmdp_bio", "mmlu"] and 0 <= entry["wmdp_bio"] <= 1
        assert (out / method / "model" / "config.json").is_file()
    saved = json.loads((out / "config.json").read_text())
    simnpo, rmu = saved["configs"]["run"]["trainers"]
    assert saved["preset"] == "paper-wmdp" and saved["bench"] == "wmdp"  # real-format data: the paper's settings
    assert simnpo["loss"]["beta"] == 5.5 and simnpo["loss"]["forget_weight"] == 5.0 and simnpo["lr"] == 4e-6
    assert rmu["loss"]["steering"] == 6.5 and rmu["loss"]["retain_weight"] == 1200.0 and rmu["rmu_layer"] == 2
    assert saved["configs"]["evaluation"]["max_forget_chunks"] == 4000  # the model card's 125 steps of 32

    relearned = runner.invoke(app, ["relearn", str(out), "--steps", "2", "--eval-at", "0,2"])
    assert relearned.exit_code == 0, relearned.output
    curves = json.loads((out / "relearn" / "rmu" / "relearn.json").read_text())
    assert curves["steps"] == [0, 2] and len(curves["wmdp_bio"]) == 2 and curves["wmdp_cyber"] == [None, None]
    assert "Bio acc before" in relearned.output and "Cyber" not in relearned.output  # tasks not scored: no column
    authors = ["relearn", str(out), "--samples", "3", "--warmup-steps", "2", "--steps", "2", "--eval-at", "0,2"]
    assert runner.invoke(app, [*authors, "--out", str(tmp_path / "few")]).exit_code == 0
    assert json.loads((tmp_path / "few" / "rmu" / "relearn.json").read_text())["relearn_items"] == 3
    too_many = runner.invoke(app, ["relearn", str(out), "--samples", "10000", "--out", str(tmp_path / "again")])
    assert too_many.exit_code == 2 and "--samples 10000 exceeds the" in too_many.output


def bad_corpus(small_wmdp, tmp_path):
    data, _ = small_wmdp
    folder = shutil.copytree(data, tmp_path / "bad")
    (folder / "bio-forget-corpus.json").write_text(json.dumps({"title": "a paper without its text"}) + "\n")
    return str(folder)


LOCAL = ["--model", "MODEL", "--data", "DATA"]
LLM = ["llm", "--bench", "wmdp", *LOCAL, *TASKS, "--forget-corpora", "bio", "--retain-corpus", "bio"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["eval", "--bench", "wmdp", "--tasks", "wmdp_foo"], "unknown WMDP task 'wmdp_foo'; use wmdp_bio, "),
        (["eval", "--bench", "wmdp", "--tasks", "wmdp_cyber"], "the built-in mini-WMDP has no wmdp_cyber"),
        (["eval", "--bench", "wmdp", "--limit", "0"], "--limit must be >= 1, got 0"),
        (["eval", "--bench", "wmdp", *LOCAL], "wmdp-cyber.json not found"),  # the default tasks include Cyber
        (["eval", "--bench", "wmdp", "--model", "MODEL", "--data", "me/wmdp"], "WMDP's hub data is cais/wmdp"),
        (["llm", "--bench", "wmdp", "--forget-corpora", "chem"], "unknown forget corpus 'chem'; use bio or cyber"),
        (["llm", "--bench", "wmdp", "--methods", "idkpo"], "idkpo needs question/answer pairs"),
        (
            ["llm", "--bench", "wmdp", "--model", "MODEL", "--data", "cais/wmdp", *TASKS],
            "the WMDP bio forget corpus is gated",
        ),
        ([*LLM[:-1], "cyber"], "cyber-retain-corpus.json not found"),
        ([*LLM, "--data", "BAD"], "WMDP bio-forget-corpus item 0 has no field text"),
        (
            [*LLM, "--methods", "rmu", "--rmu-layer", "9"],
            "--rmu-layer 9 matches no module: the model has decoder layers",
        ),
        (
            [*LLM, "--methods", "rmu", "--rmu-layer", "2", "--rmu-params", "lm_head.bias"],
            "--rmu-params 'lm_head.bias' matches no parameter",
        ),
    ],
)
def test_bad_wmdp_input_is_one_line_with_exit_2_and_nothing_written(args, message, small_wmdp, tmp_path):
    data, model = small_wmdp
    values = {"MODEL": str(model), "DATA": str(data)}
    if "BAD" in args:
        values["BAD"] = bad_corpus(small_wmdp, tmp_path)
    out = tmp_path / "never"
    result = runner.invoke(app, [values.get(a, a) for a in args] + ["--out", str(out)])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and not out.exists()


def test_a_missing_lm_eval_is_one_line_naming_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "lm_eval", None)  # `import lm_eval` now raises ImportError
    result = runner.invoke(app, ["eval", "--bench", "wmdp", "--out", str(tmp_path / "never")])
    assert result.exit_code == 2
    assert result.output.strip() == "error: WMDP is scored by lm-evaluation-harness: pip install 'simnpo[wmdp]'"
    assert not (tmp_path / "never").exists()


def test_hub_data_runs_the_harnesss_own_tasks_and_a_failed_download_is_one_line(small_wmdp, monkeypatch, tmp_path):
    """`--data cais/wmdp` hands the task names to the harness, which reads the hub itself: here (offline, nothing
    cached) its download fails, which is one line, exit 2, after the harness found the task (an unknown task name
    would fail earlier, with another message)."""
    _, model = small_wmdp
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    args = ["eval", "--bench", "wmdp", "--model", str(model), "--data", "cais/wmdp", "--tasks", "wmdp_bio"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "run")])
    assert result.exit_code == 2, result.output
    error = result.output.strip().splitlines()[-1]
    assert (
        error.startswith("error: lm-evaluation-harness could not load its WMDP or MMLU data") and "cais/wmdp" in error
    )
