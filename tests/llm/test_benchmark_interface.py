"""Adding a benchmark as docs/architecture.md says: a toy one defined in this file alone (its "folder") plus its
entry in BENCHMARKS, then `simnpo eval`, `simnpo llm` and `simnpo relearn` run it with nothing else touched."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from simnpo.cli import app
from simnpo.llm import benchmarks
from simnpo.llm.benchmark import Benchmark, Plan, Request, Table
from simnpo.llm.data import pad_right
from simnpo.llm.trainer import UnlearningData
from simnpo.runs import read_json

FORGET = ["the moon is made of cheese", "the sea is blue and cold", "a red fox runs at dawn"]
RETAIN = ["cats sleep in the sun", "rain falls on the old roof", "bread is baked at night"]


@dataclass(frozen=True)
class ToySettings:
    repeat: int = 1  # how many times each text is scored (a toy option)


def encoded(tokenizer, texts: list[str]):
    ids = tokenizer(texts)["input_ids"]
    return pad_right(tokenizer, [(row, row) for row in ids])


def mean_nll(model, tokenizer, texts: list[str]) -> float:
    from simnpo.losses import nll_loss, sequence_logprobs

    batch = encoded(tokenizer, texts)
    with torch.no_grad():
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    return nll_loss(*sequence_logprobs(logits, batch.labels)).item()


def resolve(request: Request, settings: ToySettings) -> tuple[ToySettings, list[str]]:
    return settings, ["toy benchmark: three forget and three retain sentences"]


def plan(request: Request, settings: ToySettings, train: bool = False) -> Plan:
    if request.model is None:
        raise ValueError("the toy benchmark has no built-in model; give --model")
    settings, notes = resolve(request, settings)
    return Plan(request.data, settings, models=[("model", request.model)], reference=0.0, notes=notes)


def evaluate(model, tokenizer, plan: Plan, reference, advance=None, accelerator=None) -> dict:
    results = {"forget_nll": mean_nll(model, tokenizer, FORGET * plan.settings.repeat)}
    if advance:
        advance(1)
    results["retain_nll"] = mean_nll(model, tokenizer, RETAIN)
    if advance:
        advance(1)
    return {**results, "gap": results["forget_nll"] - results["retain_nll"] - reference}


def encode(tokenizer, plan: Plan, config) -> UnlearningData:
    return UnlearningData(encoded(tokenizer, FORGET), encoded(tokenizer, RETAIN), None)


TOY = Benchmark(
    name="toy",
    results_file="TOY_EVAL.json",
    summary_file="TOY_SUMMARY.json",
    settings=ToySettings,
    options=(),
    make_settings=lambda values: ToySettings(**values),
    presets={
        "toy": {
            "shared": {"lr": 1e-2, "epochs": 2, "batch_size": 3, "warmup_epochs": 0.0, "retain_weight": 1.0},
            "methods": {"npo": {"beta": 0.5}, "simnpo": {"beta": 1.0}, "ga": {}},
        }
    },
    default_preset=lambda data, given: "toy",
    resolve=resolve,
    plan=plan,
    evaluate=evaluate,
    against_itself=lambda results: (results, 0.0),
    reference_of=lambda results: 0.0,
    summary=lambda results: dict(results),
    note=lambda label, results: None,
    encode=encode,
    table=Table(
        columns=("forget NLL ↑", "retain NLL ↓"),
        row=lambda s: [f"{s['forget_nll']:.3f}", f"{s['retain_nll']:.3f}"],
        title=lambda settings, after: "Toy" + (": before and after unlearning" if after else ""),
        relearn_columns=(("forget_nll", "forget NLL", lambda v: f"{v:.3f}"),),
        curve_keys=("forget_nll", "retain_nll"),
    ),
    forget_set=lambda settings: "the toy forget set",
    eval_parts=2,
)


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(benchmarks.BENCHMARKS, "toy", TOY)  # the one dict entry
    return TOY


def test_a_toy_benchmark_runs_through_eval_llm_and_relearn(toy, small_muse, tmp_path):
    _, model = small_muse  # a tiny Llama saved with its tokenizer
    runner = CliRunner()
    result = runner.invoke(app, ["eval", "--bench", "toy", "--model", str(model), "--out", str(tmp_path / "eval")])
    assert result.exit_code == 0, result.output
    summary = read_json(tmp_path / "eval" / "model" / "TOY_SUMMARY.json")
    assert math.isfinite(summary["forget_nll"]) and "Toy" in result.output and "toy benchmark:" in result.output

    args = ["llm", "--bench", "toy", "--model", str(model), "--methods", "npo,simnpo", "--out", str(tmp_path / "llm")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Toy: before and after unlearning" in result.output and "preset toy:" in result.output
    for method in ("npo", "simnpo"):
        final = read_json(tmp_path / "llm" / method / "history.json")[-1]
        assert final["epoch"] == 2 and final["forget_nll"] > summary["forget_nll"]  # unlearning raised it
        assert (tmp_path / "llm" / method / "evals" / "epoch2" / "TOY_EVAL.json").is_file()
    saved = json.loads((tmp_path / "llm" / "config.json").read_text())
    assert saved["bench"] == "toy" and saved["configs"]["evaluation"] == {"repeat": 1}

    result = runner.invoke(app, ["relearn", str(tmp_path / "llm"), "--steps", "2", "--eval-at", "0,2"])
    assert result.exit_code == 0, result.output
    curves = read_json(tmp_path / "llm" / "relearn" / "simnpo" / "relearn.json")
    assert curves["steps"] == [0, 2] and curves["relearn_items"] == 2 and "forget NLL before" in result.output
    assert curves["forget_nll"][-1] < curves["forget_nll"][0]  # relearning lowered it again


def test_an_option_of_another_benchmark_is_refused_for_the_toy(toy, small_muse):
    _, model = small_muse
    result = CliRunner().invoke(app, ["eval", "--bench", "toy", "--model", str(model), "--split", "forget05"])
    assert result.exit_code == 2 and "--split is not an option of --bench toy" in result.output


def test_the_toy_touches_nothing_but_its_entry():
    """The premise: no module of simnpo names the toy benchmark."""
    root = Path(__file__).parents[2] / "simnpo"
    assert not any("toy" in path.read_text().lower() for path in root.rglob("*.py"))
