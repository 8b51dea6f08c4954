"""`simnpo eval --bench muse` and `simnpo llm --bench muse` on a given model and a local folder of MUSE-format files
(the real-data path), and one-line errors with exit code 2."""

import json

import pytest
from typer.testing import CliRunner

from simnpo.cli import app
from simnpo.llm.muse.metrics import RETRAIN_AUC

runner = CliRunner()


def test_eval_a_given_model_on_a_local_muse_folder(small_muse, tmp_path):
    data, model = small_muse
    args = ["eval", "--bench", "muse", "--model", str(model), "--data", str(data), "--corpus", "books"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "run" / "model" / "MUSE_EVAL.json").read_text())
    assert results["privleak"]["retrain_auc"] == RETRAIN_AUC["books"]  # the published reference of the corpus
    assert "MUSE-Books" in result.output and "VerbMem D_f" in result.output
    # the items of each set, counted from the files (4 articles per split: 4 cuts, questions, passages each)
    sizes = "VerbMem 16 prompts, KnowMem 16 D_f and 16 D_r questions (3 and 3 in-context examples), PrivLeak 16 forget"
    assert f"evaluation sets: {sizes} and 16 holdout texts" in result.output
    result = runner.invoke(app, [*args, "--retrain-auc", "0.5", "--out", str(tmp_path / "own")])
    summary = json.loads((tmp_path / "own" / "model" / "MUSE_SUMMARY.json").read_text())
    assert summary["privleak"] == pytest.approx((summary["privleak_auc"] - 0.5) / 0.5 * 100)


def test_llm_unlearns_chunks_of_a_local_muse_folder(small_muse, tmp_path):
    data, model = small_muse
    out = tmp_path / "run"
    args = ["llm", "--bench", "muse", "--model", str(model), "--data", str(data), "--methods", "simnpo_nll,npo"]
    args += ["--epochs", "1", "--batch-size", "2", "--max-length", "32", "--lr", "1e-3", "--no-bf16", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    for method in ("simnpo_nll", "npo"):
        (entry,) = json.loads((out / method / "history.json").read_text())
        assert entry["epoch"] == 1 and set(entry) >= {"verbmem_f", "knowmem_f", "privleak", "knowmem_r"}
        assert (out / method / "evals" / "epoch1" / "MUSE_EVAL.json").is_file()
        assert (out / method / "model" / "config.json").is_file()
    saved = json.loads((out / "config.json").read_text())
    config, trainer = saved["configs"], saved["configs"]["run"]["trainers"][0]
    assert saved["preset"] == "paper-muse-news"  # MUSE data without a preset gets the paper's MUSE settings
    assert trainer["max_length"] == 32 and trainer["loss"]["beta"] == 0.7 and trainer["loss"]["retain_weight"] == 0.1
    assert trainer["schedule"] == "constant" and config["evaluation"]["corpus"] == "news" and saved["bench"] == "muse"
    assert config["run"]["eval_every"] == 0  # real-format data: evaluated after the last epoch only
    again = runner.invoke(app, args)  # finished methods are not trained again
    assert again.exit_code == 0 and "resuming" in again.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["eval", "--bench", "muse", "--corpus", "books"], "built-in mini-MUSE is news"),
        (["eval", "--bench", "muse", "--corpus", "wiki", "--model", "M"], "unknown MUSE corpus 'wiki'"),
        (["eval", "--bench", "muse", "--model", "M", "--data", "muse-bench/MUSE-Books"], "pass --corpus books"),
        (["eval", "--bench", "muse", "--model", "M", "--data", "/no/such/folder"], "does not exist"),
        (["eval", "--bench", "muse", "--retrain-auc", "1.5"], "--retrain-auc must be in"),
        (["llm", "--bench", "muse", "--split", "forget05"], "--split is not an option of --bench muse"),
        (["llm", "--bench", "muse", "--max-new-tokens", "8"], "--max-new-tokens is not an option of --bench muse"),
        (["llm", "--bench", "tofu", "--corpus", "news"], "--corpus is not an option of --bench tofu"),
        (["llm", "--bench", "muse", "--template", "llama2"], "--template is not an option of --bench muse"),
        (["eval", "--bench", "muse", "--template", "llama2"], "--template is not an option of --bench muse"),
        (["llm", "--bench", "muse", "--preset", "mini-tofu"], "preset mini-tofu is for --bench tofu"),
        (["llm", "--bench", "muse", "--preset", "paper-muse-news", "--corpus", "books"], "is for news, not books"),
        (["llm", "--bench", "muse", "--methods", "idkpo"], "MUSE's forget set is text"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(args, message, tmp_path, small_muse):
    data, model = small_muse
    args = [a if a != "M" else str(model) for a in args]
    result = runner.invoke(app, [*args, "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_a_missing_muse_file_is_named(small_muse, tmp_path):
    data, model = small_muse
    import shutil

    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    (copy / "knowmem" / "retain_qa.json").unlink()
    result = runner.invoke(app, ["eval", "--bench", "muse", "--model", str(model), "--data", str(copy)])
    assert result.exit_code == 2 and "knowmem/retain_qa.json not found" in result.output


def test_eval_builtin_evaluates_retrain_then_target(small_runs, tmp_path):
    """`simnpo eval --bench muse` with no model: the retrain model first (PrivLeak 0 against itself, its AUC the
    reference), then the target; the built-in models come from the cache the small `simnpo llm` run made."""
    cache = small_runs / "muse-cache"
    args = ["eval", "--bench", "muse", "--finetune-epochs", "2", "--cache-dir", str(cache)]
    result = runner.invoke(app, [*args, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert list(summary) == ["retrain", "target"] and summary["retrain"]["privleak"] == 0.0
    target = json.loads((tmp_path / "target" / "MUSE_EVAL.json").read_text())
    assert target["privleak"]["retrain_auc"] == summary["retrain"]["privleak_auc"]
    assert f"retrain AUC {summary['retrain']['privleak_auc']:.4f}" in result.output
    # a given model on the built-in data is compared with the built-in retrain model too
    (model,) = cache.glob("mini-*/target")
    result = runner.invoke(app, [*args, "--model", str(model), "--out", str(tmp_path / "given")])
    assert result.exit_code == 0, result.output
    assert list(json.loads((tmp_path / "given" / "summary.json").read_text())) == ["retrain", "model"]
