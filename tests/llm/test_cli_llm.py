"""`simnpo llm --bench tofu` on tiny settings, resuming, and one-line errors."""

import json
import time

import pytest
from typer.testing import CliRunner

from simnpo.cli import app

runner = CliRunner()
TINY = ["--finetune-epochs", "2", "--epochs", "2", "--max-new-tokens", "4"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("llm-cache")


def test_llm_runs_every_step_and_resumes(cache, tmp_path):
    args = ["llm", "--bench", "tofu", *TINY, "--cache-dir", str(cache), "--out", str(tmp_path), "--eval-every", "1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "preset mini-tofu: betas=" in result.output
    for name in ("retain", "target", "npo_nll", "simnpo_nll"):
        assert name in result.output
    history = json.loads((tmp_path / "simnpo_nll" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    assert (tmp_path / "npo_nll" / "evals" / "epoch2" / "TOFU_EVAL.json").is_file()
    assert (tmp_path / "simnpo_nll" / "model" / "config.json").is_file()
    config = json.loads((tmp_path / "config.json").read_text())
    trainers = config["configs"]["LLMRunConfig"]["trainers"]
    assert [(t["method"], t["beta"], t["lr"]) for t in trainers] == [("npo_nll", 0.1, 5e-4), ("simnpo_nll", 0.5, 5e-4)]
    # the same command again finds every evaluation and method finished and redoes none of them
    written = (tmp_path / "target" / "TOFU_EVAL.json").stat().st_mtime_ns
    start = time.perf_counter()
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "resuming" in again.output
    assert json.loads((tmp_path / "simnpo_nll" / "history.json").read_text()) == history
    assert (tmp_path / "target" / "TOFU_EVAL.json").stat().st_mtime_ns == written
    assert again.output.count("simnpo_nll") >= 1 and "target" in again.output
    assert time.perf_counter() - start < 30


@pytest.mark.parametrize(
    "args, message",
    [
        (["--methods", "npo,simpo"], "unknown method 'simpo'"),
        (["--model", "/no/such/model"], "model folder /no/such/model does not exist"),
        (["--preset", "paper-forget05", "--split", "forget10"], "preset paper-forget05 is for forget05, not forget10"),
        (["--preset", "paper-forget11"], "unknown preset 'paper-forget11'"),
        (["--beta", "0"], "beta must be a finite number > 0"),
        (["--bench", "wmdp"], "unknown benchmark 'wmdp'"),
        (["--schedule", "cosine"], "unknown schedule 'cosine'"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(cache, tmp_path, args, message):
    out = tmp_path / "never"
    result = runner.invoke(app, ["llm", "--bench", "tofu", *TINY, "--cache-dir", str(cache), *args, "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert not out.exists()


def test_an_unreachable_hub_id_fails_fast(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    result = runner.invoke(
        app, ["llm", "--model", "nobody/no-such-model", "--data", str(tmp_path), "--out", str(tmp_path / "x")]
    )
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert time.perf_counter() - start < 10
