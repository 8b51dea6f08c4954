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


def dry_run(*args) -> dict:
    result = runner.invoke(app, ["llm", *args, "--dry-run"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def trainers(plan: dict) -> list[tuple]:
    return [(t["loss"]["method"], t["lr"], t["epochs"]) for t in plan["configs"]["run"]["trainers"]]


def test_a_yaml_or_toml_config_sets_options_and_the_command_line_wins(tmp_path):
    (tmp_path / "c.yaml").write_text("lr: 2.0e-4\nmethods: [npo, simnpo_nll]\nmax-new-tokens: 8\n")
    (tmp_path / "c.toml").write_text('lr = 2.0e-4\nmethods = ["npo", "simnpo_nll"]\nmax_new_tokens = 8\n')
    default_lr = trainers(dry_run())[0][1]
    assert default_lr != 2e-4  # the premise: the file changes something
    for name in ("c.yaml", "c.toml"):
        plan = dry_run("--config", str(tmp_path / name), "--epochs", "3")
        assert trainers(plan) == [("npo", 2e-4, 3), ("simnpo_nll", 2e-4, 3)]
        assert plan["configs"]["evaluation"]["max_new_tokens"] == 8
        assert trainers(dry_run("--config", str(tmp_path / name), "--lr", "1e-3"))[0][1] == 1e-3  # command line wins


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("c.yaml", "lrr: 1.0e-4\n", "unknown key 'lrr' in config file .*c.yaml; did you mean 'lr'\\?"),
        ("c.toml", "max_new_token = 8\n", "did you mean 'max_new_tokens'\\?"),
        ("c.yaml", "- lr\n", "must map option names to values"),
        ("c.ini", "lr=1\n", "must be YAML \\(.yaml\\), TOML \\(.toml\\) or a run's config.json"),
    ],
)
def test_a_bad_config_file_is_one_line(tmp_path, name, text, message):
    import re

    (tmp_path / name).write_text(text)
    result = runner.invoke(app, ["llm", "--config", str(tmp_path / name), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and re.search(message, result.output) and len(result.output.splitlines()) == 1
    assert not (tmp_path / "run").exists()
    missing = runner.invoke(app, ["llm", "--config", str(tmp_path / "none.yaml")])
    assert missing.exit_code == 2 and "config file" in missing.output and "not found" in missing.output


def test_a_config_key_may_be_any_name_of_its_option(tmp_path):
    import click
    from typer.main import get_command

    from simnpo.cli.options import config_values

    root = get_command(app)
    ctx = click.Context(root.commands["markov"], info_name="markov", parent=click.Context(root, info_name="simnpo"))
    (tmp_path / "m.yaml").write_text("lr: 1.0e-3\niterations: 3\neval-every: 1\n")
    assert config_values(ctx, tmp_path / "m.yaml") == {"lrs": 1e-3, "steps": 3, "eval_every": 1}


def test_a_runs_config_json_reruns_it_with_the_same_numbers(small_runs, tmp_path):
    saved = json.loads((small_runs / "llm" / "config.json").read_text())
    assert saved["options"]["epochs"] == 2 and "out" not in saved["options"]  # what the run was given
    result = runner.invoke(app, ["llm", "--config", str(small_runs / "llm" / "config.json"), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for method in ("npo_nll", "simnpo_nll"):
        ours, theirs = (json.loads((f / method / "history.json").read_text()) for f in (tmp_path, small_runs / "llm"))
        assert ours == theirs
    assert json.loads((tmp_path / "config.json").read_text())["configs"] == saved["configs"]
    wrong = runner.invoke(app, ["eval", "--bench", "tofu", "--config", str(small_runs / "llm" / "config.json")])
    assert wrong.exit_code == 2 and "is the config of a run of `simnpo llm`" in wrong.output
