"""The simnpo command: help, version, the weights command, and one-line errors with exit code 2."""

import json
import shutil
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import simnpo
from simnpo.cli import app

runner = CliRunner()


def test_help_lists_the_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "weights" in result.output


@pytest.mark.parametrize("command", ["markov", "eval", "llm", "relearn", "plot", "weights"])
def test_option_help_keeps_its_bracketless_defaults(command):
    """Help texts go through rich markup, which would swallow "[...]": every option's help says its default in
    parentheses, and none is lost."""
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert " ." not in result.output.replace("...", "")  # a swallowed "[...]" leaves "text ." behind


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"simnpo {simnpo.__version__}"
    assert simnpo.__version__ != "0.0.0+unknown"


def test_weights_writes_figures_data_and_config(tmp_path):
    out = tmp_path / "weights"
    args = ["weights", "--lengths", "4,16", "--betas", "1,3", "--margin", "0.5", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    for name in ("weights.png", "weights.pdf", "weights.json", "config.json"):
        assert (out / name).stat().st_size > 0, name
    for name in ("weights.png", "weights.pdf", "weights.json"):
        assert f"wrote {out / name}" in result.output
    assert (out / "weights.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "weights.pdf").read_bytes()[:5] == b"%PDF-"
    config = json.loads((out / "config.json").read_text())
    assert config["configs"]["weights"]["lengths"] == [4, 16]
    assert config["configs"]["weights"]["margin"] == 0.5
    assert config["command"] == "weights"


def test_weights_without_out_makes_a_run_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["weights", "--lengths", "5"])
    assert result.exit_code == 0, result.output
    (folder,) = (tmp_path / "runs").iterdir()
    assert folder.name.startswith("weights-") and (folder / "weights.png").is_file()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--lengths", "5,x"], "--lengths takes comma-separated int values"),
        (["--lengths", "0"], "lengths must be whole numbers >= 1"),
        (["--betas", "-1"], "betas must be numbers > 0"),
        (["--margin", "-0.5"], "margin must be >= 0"),
        (["--ref-token-logprob", "0.5"], "ref_token_logprob must lie in"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2_and_writes_nothing(tmp_path, args, message):
    out = tmp_path / "never"
    result = runner.invoke(app, ["weights", *args, "--out", str(out)])
    assert result.exit_code == 2
    assert message in result.output
    assert not out.exists()


@pytest.mark.skipif(shutil.which("simnpo") is None, reason="console script not installed")
def test_console_script_error_has_no_traceback(tmp_path):
    args = ["simnpo", "weights", "--betas", "0", "--out", str(tmp_path / "x")]
    proc = subprocess.run(args, capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: betas must be numbers > 0, got [0.0]"
    assert "Traceback" not in proc.stderr + proc.stdout


def test_module_entry_point_prints_version():
    proc = subprocess.run([sys.executable, "-m", "simnpo.cli", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == f"simnpo {simnpo.__version__}"
