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
    assert json.loads((root / "run" / "config.json").read_text())["configs"]["evaluation"]["split"] == "forget10"
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
        (
            ["--model", str(cache / "target"), "--data", str(cache / "data"), "--pad-token", "nosuchtoken"],
            "'nosuchtoken' is not a token of",
        ),
        (["--data", str(cache / "data")], "--data needs --model"),
        (["--protocol", "tofu"], "unknown protocol"),
        (["--template", "alpaca"], "unknown template 'alpaca'"),
        (["--template", "chat"], "the built-in mini-TOFU's tokenizer has no chat template"),
        (["--model", str(cache / "target"), "--data", str(cache / "data"), "--template", "llama3"], "has none"),
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


@pytest.fixture(scope="module")
def sentencepiece_llama(llama2_tokenizer, tmp_path_factory):
    """A tiny random Llama on the 32k Llama-2-style SentencePiece vocabulary, saved with its tokenizer."""
    from simnpo.llm.models import TinyLlamaConfig, tiny_llama

    tokenizer, _ = llama2_tokenizer
    folder = tmp_path_factory.mktemp("sp-llama")
    config = TinyLlamaConfig(hidden_size=32, intermediate_size=64, layers=2, heads=2)
    tiny_llama(config, tokenizer, seed=0).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def test_eval_on_a_sentencepiece_llama_equals_the_benchmarks_procedure_per_item(
    sentencepiece_llama, tofu_folder, tmp_path
):
    """Answer probabilities and truth ratios of `simnpo eval --template llama2` equal TOFU's procedure computed
    here independently: the prompt and answer tokenised as one string, one item at a time, no padding."""
    import math

    import torch

    from simnpo.llm.models import load_model, load_tokenizer
    from simnpo.llm.tofu.data import load_tofu

    args = ["eval", "--bench", "tofu", "--model", str(sentencepiece_llama), "--data", str(tofu_folder)]
    args += ["--template", "llama2", "--pad-token", "eos", "--max-new-tokens", "3", "--eval-batch-size", "16"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "template llama2 (--template)" in result.output
    results = json.loads((tmp_path / "run" / "model" / "TOFU_EVAL.json").read_text())
    model, tokenizer = load_model(sentencepiece_llama), load_tokenizer(sentencepiece_llama)
    assert len(tokenizer) == 32000

    def avg_loss(question: str, answer: str) -> float:
        prompt = tokenizer(f"[INST] {question} [/INST]")["input_ids"]
        full = tokenizer(f"[INST] {question} [/INST]{answer}")["input_ids"] + [tokenizer.eos_token_id]
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([full])).logits[0]
        targets = torch.tensor(full[len(prompt) :])
        return torch.nn.functional.cross_entropy(logits[len(prompt) - 1 : -1], targets).item()

    rows = load_tofu(tofu_folder, "forget10_perturbed")
    for i in range(0, len(rows), 4):
        row = rows[i]
        answer = avg_loss(row["question"], row["answer"])
        paraphrase = avg_loss(row["question"], row["paraphrased_answer"])
        perturbed = [avg_loss(row["question"], p) for p in row["perturbed_answer"]]
        ratio = math.exp(-sum(perturbed) / len(perturbed)) / math.exp(-paraphrase)
        assert results["forget_Q_A_Prob"]["value_by_index"][str(i)]["prob"] == pytest.approx(
            math.exp(-answer), rel=1e-5
        )
        assert results["forget_truth_ratio"]["value_by_index"][str(i)]["score"] == pytest.approx(ratio, rel=1e-5)
    ra = load_tofu(tofu_folder, "real_authors_perturbed")[0]
    expected = math.exp(-avg_loss(ra["question"], ra["answer"]))
    assert results["ra_Q_A_Prob"]["value_by_index"]["0"]["prob"] == pytest.approx(expected, rel=1e-5)


def test_eval_dry_run_resolves_the_template_and_writes_nothing(sentencepiece_llama, tofu_folder, tmp_path):
    args = ["eval", "--bench", "tofu", "--model", str(sentencepiece_llama), "--data", str(tofu_folder)]
    result = runner.invoke(app, [*args, "--pad-token", "eos", "--dry-run", "--out", str(tmp_path / "x")])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["configs"]["evaluation"]["template"] == "llama2"
    assert payload["notes"][0].startswith(
        "template llama2 (detected: no chat template, Llama architecture (TOFU's Llama-2 checkpoints))"
    )
    assert not (tmp_path / "x").exists()


def test_a_given_chat_model_reads_the_built_in_data_in_its_own_template(builtin_run, tmp_path):
    """The built-in data with a model of its own (README, "A real model on CPU"): its chat template is detected and
    the built-in tokenizer, trained on the Llama-2 tags, is not asked for one."""
    from simnpo.llm.models import load_model, load_tokenizer

    root, _ = builtin_run
    (cache,) = (root / "cache").iterdir()
    chat = load_tokenizer(cache / "target")
    chat.chat_template = "{% for m in messages %}<|im_start|>{{ m['content'] }}{{ eos_token }}{% endfor %}"
    chat.save_pretrained(tmp_path / "chat")
    load_model(cache / "target").save_pretrained(tmp_path / "chat")
    args = [
        "eval",
        "--bench",
        "tofu",
        "--model",
        str(tmp_path / "chat"),
        "--split",
        "forget01",
        "--max-new-tokens",
        "2",
    ]
    result = runner.invoke(app, [*args, "--cache-dir", str(root / "cache"), "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "template chat-system (detected: its chat template is ChatML" in result.output
    assert list(json.loads((tmp_path / "run" / "summary.json").read_text())) == ["model"]
