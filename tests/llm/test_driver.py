"""The driver's method loop: each method's model is freed before the next one starts, and a method counts as
finished only once its final model is written."""

import gc
import json
import weakref
from types import SimpleNamespace

from accelerate import Accelerator

from simnpo.llm import driver
from simnpo.llm.benchmark import Request
from simnpo.llm.templates import TEMPLATES
from simnpo.llm.tofu.benchmark import encode_unlearning_data
from simnpo.llm.tofu.data import load_tofu
from simnpo.llm.trainer import TrainerConfig
from simnpo.runs import write_json


def test_each_method_starts_with_the_previous_methods_model_freed(
    trained_model, tokenizer, tofu_folder, tmp_path, monkeypatch
):
    start = tmp_path / "start"
    trained_model.save_pretrained(str(start))
    tokenizer.save_pretrained(str(start))
    rows = load_tofu(tofu_folder, "forget10")[:8], load_tofu(tofu_folder, "retain90")[:8]
    encode = lambda tok, config: encode_unlearning_data(tok, TEMPLATES["llama2"], *rows, config.method, 64, seed=0)  # noqa: E731
    trainers = tuple(TrainerConfig.for_method(m, {"epochs": 1, "batch_size": 8, "lr": 1e-3}) for m in ("simnpo", "ga"))
    run = driver.LLMRunConfig(methods=("simnpo", "ga"), trainers=trainers)
    accelerator = Accelerator(cpu=True)
    earlier, alive_at_start = [], []
    real_unlearn = driver.unlearn

    def unlearn(model, *args, **kwargs):
        gc.collect()
        alive_at_start.append([ref() is not None for ref in earlier])
        earlier.append(weakref.ref(model))
        return real_unlearn(model, *args, **kwargs)

    monkeypatch.setattr(driver, "unlearn", unlearn)
    evaluate = lambda model, tok: ({"items": 1}, {"score": 1.0})  # noqa: E731
    bench = SimpleNamespace(results_file="RESULTS.json")
    driver.unlearn_each(run, Request(), start, tmp_path, accelerator, None, encode, evaluate, bench)
    assert alive_at_start == [[], [False]]  # the first method's model was gone when the second started
    assert not accelerator._models
    assert [json.loads((tmp_path / m / "history.json").read_text())[-1]["epoch"] for m in ("simnpo", "ga")] == [1, 1]
    for method in ("simnpo", "ga"):
        assert (tmp_path / method / "model" / "config.json").is_file()
        assert (tmp_path / method / "model" / "tokenizer.json").is_file()
    # a method whose last evaluation was written but whose model was not (killed while saving) is not finished
    (tmp_path / "ga" / "model" / "config.json").unlink()
    alive_at_start.clear()
    driver.unlearn_each(run, Request(), start, tmp_path, accelerator, None, encode, evaluate, bench)
    assert len(alive_at_start) == 1 and (tmp_path / "ga" / "model" / "config.json").is_file()


TABLE = SimpleNamespace(row=lambda s: [f"{s['quality']:.2f}", f"{s['utility']:.2f}"])


def test_best_and_last_rows_follow_the_benchmarks_rule(tmp_path):
    """With a rule and several evaluation points: the best row, then the last (or one row when they coincide); a
    method no point of which meets the rule keeps its last row and is named under the table."""
    histories = {
        "peaks": [{"epoch": 1, "quality": 0.2, "utility": 0.9}, {"epoch": 2, "quality": 0.5, "utility": 0.8}],
        "climbs": [{"epoch": 1, "quality": 0.1, "utility": 0.9}, {"epoch": 2, "quality": 0.3, "utility": 0.9}],
        "breaks": [{"epoch": 1, "quality": 0.9, "utility": 0.1}, {"epoch": 2, "quality": 0.9, "utility": 0.2}],
        "once": [{"epoch": 2, "quality": 0.4, "utility": 0.9}],
    }
    for method, history in histories.items():
        write_json(tmp_path / method / "history.json", history)
    write_json(tmp_path / "summary.json", {"target": {"quality": 0.0, "utility": 1.0}})
    rule = lambda history, start, reference: max(  # noqa: E731
        [h for h in history if h["utility"] >= 0.85 * start["utility"]], key=lambda h: h["quality"], default=None
    )
    bench = SimpleNamespace(best=("highest quality keeping 85 % utility", rule), table=TABLE)
    plan = SimpleNamespace(models=[("target", "T")], reference_model=None)
    rows, notes = driver.best_and_last(bench, tuple(histories), plan, tmp_path)
    assert [r[0] for r in rows] == [
        "peaks best, epoch 1",
        "peaks last, epoch 2",
        "climbs best = last, epoch 2",
        "breaks last, epoch 2",
        "once",
    ]
    assert rows[0][1:] == ["0.20", "0.90"] and rows[1][1:] == ["0.50", "0.80"]
    assert notes == ["best: highest quality keeping 85 % utility", "breaks: no evaluation meets the best-point rule"]
    assert [
        r[0] for r in driver.best_and_last(SimpleNamespace(best=None, table=TABLE), ("peaks",), plan, tmp_path)[0]
    ] == ["peaks"]
