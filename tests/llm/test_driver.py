"""The driver's method loop: each method's model is freed before the next one starts, and a method counts as
finished only once its final model is written."""

import gc
import weakref
from types import SimpleNamespace

from accelerate import Accelerator

from simnpo.llm import driver
from simnpo.llm.benchmark import Request
from simnpo.llm.templates import TEMPLATES
from simnpo.llm.tofu.benchmark import encode_unlearning_data
from simnpo.llm.tofu.data import load_tofu
from simnpo.llm.trainer import TrainerConfig


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
    finals = driver.unlearn_each(run, Request(), start, tmp_path, accelerator, None, encode, evaluate, bench)
    assert alive_at_start == [[], [False]]  # the first method's model was gone when the second started
    assert [f["epoch"] for f in finals] == [1, 1] and not accelerator._models
    for method in ("simnpo", "ga"):
        assert (tmp_path / method / "model" / "config.json").is_file()
        assert (tmp_path / method / "model" / "tokenizer.json").is_file()
    # a method whose last evaluation was written but whose model was not (killed while saving) is not finished
    (tmp_path / "ga" / "model" / "config.json").unlink()
    alive_at_start.clear()
    driver.unlearn_each(run, Request(), start, tmp_path, accelerator, None, encode, evaluate, bench)
    assert len(alive_at_start) == 1 and (tmp_path / "ga" / "model" / "config.json").is_file()
