"""`simnpo eval --bench tofu`: built-in run, a given model on a local TOFU folder, and one-line errors."""

import json

import pytest
from typer.testing import CliRunner

from simnpo.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def builtin_run(tmp_path_factory):
    """The built-in flow with a 2-epoch fine-tune (fast, barely trained)."""
    root = tmp_path_factory.mktemp("eval")
    args = [
        "eval",
        "--bench",
        "tofu",
        "--finetune-epochs",
        "2",
        "--max-new-tokens",
        "8",
        "--cache-dir",
        str(root / "cache"),
        "--out",
        str(root / "run"),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return root, result


def test_builtin_evaluates_retain_then_target(builtin_run):
    root, result = builtin_run
    summary = json.loads((root / "run" / "summary.json").read_text())
    assert list(summary) == ["retain", "target"]
    assert summary["retain"]["forget_quality"] == pytest.approx(1.0)
    assert 0 <= summary["target"]["forget_quality"] <= 1
    assert (root / "run" / "target" / "TOFU_EVAL.json").is_file()
    assert json.loads((root / "run" / "config.json").read_text())["configs"]["TofuEvalConfig"]["split"] == "forget10"
    assert "TOFU forget10" in result.output
    # the built-in models are cached: trained once, found by their settings
    (cache,) = (root / "cache").iterdir()
    assert {p.name for p in cache.iterdir()} >= {"data", "tokenizer", "target", "retain90"}


def test_a_given_model_on_a_local_tofu_folder(builtin_run, tmp_path):
    root, _ = builtin_run
    (cache,) = (root / "cache").iterdir()
    model, data = cache / "target", cache / "data"
    base = ["eval", "--bench", "tofu", "--model", str(model), "--data", str(data), "--max-new-tokens", "4"]
    result = runner.invoke(app, [*base, "--out", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    assert "unavailable" in result.output
    retain = root / "run" / "retain" / "TOFU_EVAL.json"
    result = runner.invoke(
        app, [*base, "--retain-results", str(retain), "--max-new-tokens", "8", "--out", str(tmp_path / "b")]
    )
    assert result.exit_code == 0, result.output
    ours = json.loads((tmp_path / "b" / "model" / "TOFU_SUMMARY.json").read_text())
    builtin = json.loads((root / "run" / "target" / "TOFU_SUMMARY.json").read_text())
    assert ours["forget_quality"] == pytest.approx(builtin["forget_quality"])
    # a retain file of another split, or another size, is refused before anything is written
    result = runner.invoke(
        app, [*base, "--split", "forget05", "--retain-results", str(retain), "--out", str(tmp_path / "c")]
    )
    assert result.exit_code == 2 and "not forget05" in result.output and not (tmp_path / "c").exists()


def test_bad_input_is_one_line_exit_2_and_writes_nothing(builtin_run, tmp_path):
    root, _ = builtin_run
    (cache,) = (root / "cache").iterdir()
    nopad = tmp_path / "nopad"
    from simnpo.llm.models import load_model, load_tokenizer

    tok = load_tokenizer(cache / "target")
    tok.pad_token = None
    tok.save_pretrained(str(nopad))
    load_model(cache / "target").save_pretrained(str(nopad))
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "forget10_perturbed.json").write_text((cache / "data" / "forget10_perturbed.json").read_text())
    cases = [
        (["--split", "forget20"], "unknown TOFU split 'forget20'"),
        (["--bench", "wiki"], "unknown benchmark 'wiki'"),
        (["--model", str(tmp_path / "missing")], "does not exist"),
        (["--data", str(partial), "--model", str(cache / "target")], "retain_perturbed.json not found"),
        (["--model", str(nopad), "--data", str(cache / "data")], "has no pad token; pass --pad-token"),
        (["--data", str(cache / "data")], "--data needs --model"),
        (["--protocol", "tofu"], "unknown protocol"),
    ]
    for args, message in cases:
        out = tmp_path / "never"
        full = ["eval", "--bench", "tofu", "--cache-dir", str(root / "cache"), *args, "--out", str(out)]
        if "--bench" in args:
            full = ["eval", *args, "--out", str(out)]
        result = runner.invoke(app, full)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output
        assert not out.exists()
    # with --pad-token the same model evaluates
    ok = runner.invoke(
        app,
        [
            "eval",
            "--bench",
            "tofu",
            "--model",
            str(nopad),
            "--data",
            str(cache / "data"),
            "--pad-token",
            "eos",
            "--max-new-tokens",
            "2",
            "--out",
            str(tmp_path / "ok"),
        ],
    )
    assert ok.exit_code == 0, ok.output
