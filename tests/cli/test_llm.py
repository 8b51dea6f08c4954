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
    args = ["llm", "--bench", "tofu", *TINY, "--cache-dir", str(cache), "--out", str(tmp_path)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    # the built-in evaluates every epoch by default: per method its best point by the stated rule, and its last
    assert "best: highest forget quality with model utility >= 95 % of the starting model's" in result.output
    for method in ("npo_nll", "simnpo_nll"):
        assert f"{method} last, epoch 2" in result.output or f"{method} best = last, epoch 2" in result.output
    assert "preset mini-tofu:\n  npo_nll: beta=0.2, " in result.output and "  simnpo_nll: beta=0.25, " in result.output
    assert "template llama2 (the built-in's)" in result.output
    for name in ("retain", "target", "npo_nll", "simnpo_nll"):
        assert name in result.output
    history = json.loads((tmp_path / "simnpo_nll" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    assert (tmp_path / "npo_nll" / "evals" / "epoch2" / "TOFU_EVAL.json").is_file()
    assert (tmp_path / "simnpo_nll" / "model" / "config.json").is_file()
    config = json.loads((tmp_path / "config.json").read_text())
    trainers = config["configs"]["run"]["trainers"]
    assert [(t["loss"]["method"], t["loss"]["beta"], t["lr"]) for t in trainers] == [
        ("npo_nll", 0.2, 5e-4),
        ("simnpo_nll", 0.25, 5e-4),
    ]
    assert config["bench"] == "tofu" and config["configs"]["template"]["name"] == "llama2"
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
        (["--methods", "wga", "--beta", "-1"], "beta must be a finite number > 0"),
        (["--mia", "loss,minkk"], "unknown attack 'minkk'; use one of loss, zlib"),
        (["--mia", "reference"], "the reference attack needs a reference model: give --mia-reference MODEL"),
        (["--mia-reference", "/no/such/model"], "model folder /no/such/model does not exist"),
        (["--methods", "pdu", "--retain-epsilon", "0"], "retain_epsilon must be a finite number > 0"),
        (["--methods", "satimp", "--beta2", "-0.5"], "beta2 must be a finite number >= 0"),
        (["--bench", "harmbench"], "unknown benchmark 'harmbench'; use one of tofu, muse, wmdp"),
        (["--schedule", "cosine"], "unknown schedule 'cosine'"),
        (["--template", "vicuna"], "unknown template 'vicuna'"),
        (["--template", "llama3"], "the built-in mini-TOFU's tokenizer has no chat template"),
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


def dry_run(*args: str) -> dict:
    result = runner.invoke(app, ["llm", *args, "--dry-run"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def loss_values(payload: dict) -> dict:
    keys = ("beta", "forget_weight", "retain_weight", "margin", "lr")
    flat = lambda t: {**t["loss"], **t}  # noqa: E731
    by_name = {method: tuple(flat(t)[k] for k in keys) for method, t in payload["methods"].items()}
    saved = {t["loss"]["method"]: tuple(flat(t)[k] for k in keys) for t in payload["configs"]["run"]["trainers"]}
    assert by_name == saved  # what config.json will hold
    return by_name


def test_paper_preset_gives_each_method_its_published_values_and_dry_run_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    payload = dry_run("--preset", "paper-forget10", "--methods", "npo_nll,simnpo_nll")
    assert loss_values(payload) == {"npo_nll": (0.1, 1.0, 1.0, 0.0, 1e-5), "simnpo_nll": (4.5, 0.125, 1.0, 0.0, 1e-5)}
    assert payload["preset"] == "paper-forget10" and payload["configs"]["evaluation"]["template"] == "llama2"
    assert list(tmp_path.iterdir()) == []  # no run folder, no built-in cache


def test_the_training_batch_and_the_scoring_batch_are_two_options(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    payload = dry_run("--batch-size", "8", "--eval-batch-size", "5")
    assert {t["batch_size"] for t in payload["configs"]["run"]["trainers"]} == {8}
    assert payload["configs"]["evaluation"]["batch_size"] == 5
    default = dry_run("--batch-size", "8")["configs"]["evaluation"]["batch_size"]
    assert default == 64  # the benchmark's own: the training batch does not leak into scoring
    for bench, batch in (("muse", 32), ("wmdp", 16)):
        assert dry_run("--bench", bench)["configs"]["evaluation"]["batch_size"] == batch


def test_precedence_preset_then_method_then_command_line(monkeypatch):
    from simnpo.llm.presets import method_values
    from simnpo.llm.tofu import presets

    fake = {"shared": {"beta": 1.0, "lr": 1e-3}, "methods": {"npo": {"beta": 2.0}, "simnpo": {}}}
    monkeypatch.setitem(presets.PRESETS, "fake", fake)
    assert method_values("fake", fake, "npo_nll", {})["beta"] == 2.0  # per method over shared
    assert method_values("fake", fake, "simnpo_nll", {})["beta"] == 1.0  # shared where the method sets none
    assert method_values("fake", fake, "npo_nll", {"beta": 3.0, "lr": 2e-3})["beta"] == 3.0  # command line
    payload = dry_run("--preset", "fake", "--lr", "2e-3")
    assert loss_values(payload)["npo_nll"][::4] == (2.0, 2e-3) and loss_values(payload)["simnpo_nll"][::4] == (
        1.0,
        2e-3,
    )
    payload = dry_run("--preset", "paper-forget10", "--beta", "1.5", "--forget-weight", "0.5")
    assert {v[:2] for v in loss_values(payload).values()} == {(1.5, 0.5)}


def test_lora_takes_the_presets_adapter_lr_unless_lr_is_given():
    from simnpo.llm.tofu.presets import PRESETS

    adapter, full = PRESETS["mini-tofu"]["shared"]["lora_lr"], PRESETS["mini-tofu"]["shared"]["lr"]
    assert adapter > full
    assert {v[4] for v in loss_values(dry_run("--lora-rank", "8")).values()} == {adapter}
    assert {v[4] for v in loss_values(dry_run()).values()} == {full}
    assert {v[4] for v in loss_values(dry_run("--lora-rank", "8", "--lr", "1e-4")).values()} == {1e-4}


def test_real_tofu_data_defaults_to_the_papers_preset_for_the_split(tofu_folder, tokenizer, tmp_path):
    from simnpo.llm.models import TinyLlamaConfig, tiny_llama

    model = tmp_path / "model"
    tiny_llama(TinyLlamaConfig(hidden_size=16, intermediate_size=32, layers=1, heads=2), tokenizer, 0).save_pretrained(
        model
    )
    tokenizer.save_pretrained(model)
    payload = dry_run("--model", str(model), "--data", str(tofu_folder), "--split", "forget05")
    assert payload["preset"] == "paper-forget05" and loss_values(payload)["simnpo_nll"][:2] == (2.5, 0.1375)
    assert payload["notes"][0].startswith("template llama2 (detected: no chat template, Llama architecture")
    assert (
        dry_run("--model", str(model), "--data", str(tofu_folder), "--split", "forget01")["preset"] == "open-unlearning"
    )
    chat = tmp_path / "chat"
    model.rename(chat)
    chat_tokenizer = type(tokenizer).from_pretrained(tokenizer.name_or_path)  # the session's tokenizer stays as is
    chat_tokenizer.chat_template = "{% for m in messages %}<|start_header_id|>{{ m['content'] }}{% endfor %}"
    chat_tokenizer.save_pretrained(chat)
    result = runner.invoke(app, ["llm", "--model", str(chat), "--data", str(tofu_folder), "--template", "llama2"])
    assert result.exit_code == 2 and "template llama2 contradicts the chat template" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_an_rmu_layer_the_model_lacks_is_one_line_before_anything_is_written(
    trained_model, tokenizer, tofu_folder, tmp_path
):
    model = tmp_path / "model"
    trained_model.save_pretrained(str(model))
    tokenizer.save_pretrained(str(model))
    out = tmp_path / "never"
    args = ["llm", "--model", str(model), "--data", str(tofu_folder), "--preset", "mini-tofu", "--template", "llama2"]
    result = runner.invoke(app, [*args, "--methods", "rmu", "--rmu-layer", "9", "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert result.output.strip() == "error: --rmu-layer 9 matches no module: the model has decoder layers 0 to 1"
    assert not out.exists()


def test_a_method_the_preset_does_not_name_runs_with_its_own_defaults(tmp_path):
    """A preset only overrides: UNDIAL, which paper-forget10 does not name, keeps its published β 10 and retain
    weight 0 and takes the preset's shared optimisation."""
    args = ["llm", "--preset", "paper-forget10", "--methods", "undial,simnpo_nll", "--dry-run"]
    result = runner.invoke(app, [*args, "--cache-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    methods = json.loads(result.output)["methods"]
    assert (methods["undial"]["loss"]["beta"], methods["undial"]["loss"]["retain_weight"]) == (10.0, 0.0)
    assert methods["undial"]["lr"] == methods["simnpo_nll"]["lr"] == 1e-5
    assert methods["simnpo_nll"]["loss"]["beta"] == 4.5


def test_methods_all_is_every_method_the_benchmark_runs(tmp_path):
    from simnpo.losses import METHODS

    for bench, refused in (("tofu", set()), ("muse", {"idkpo"}), ("wmdp", {"idkpo"})):
        args = ["llm", "--bench", bench, "--methods", "all", "--dry-run", "--cache-dir", str(tmp_path)]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert list(json.loads(result.output)["methods"]) == [m for m in METHODS if m not in refused], bench


def test_every_new_method_unlearns_the_built_in_with_its_defaults(cache, tmp_path):
    """UNDIAL, WGA, SatImp, CE-U and PDU (its dual variable moving from the first step, its ε measured) each run on
    the built-in mini-TOFU and lower the forget answers' probability."""
    methods = "undial,wga,satimp,ceu,pdu"
    args = ["llm", *TINY, "--methods", methods, "--eval-every", "0", "--dual-warmup-epochs", "0", "--lr", "2e-3"]
    result = runner.invoke(app, [*args, "--cache-dir", str(cache), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    start = json.loads((tmp_path / "target" / "TOFU_SUMMARY.json").read_text())["forget_Q_A_Prob"]
    for method in methods.split(","):
        (final,) = json.loads((tmp_path / method / "history.json").read_text())
        assert final["forget_Q_A_Prob"] < start, method
    state = json.loads((tmp_path / "pdu" / "checkpoint" / "state.json").read_text())
    multiplier, epsilon = state["dual"]
    assert epsilon > 0 and multiplier != 1.0  # ε measured on the target's retain set; λ moved from its start
