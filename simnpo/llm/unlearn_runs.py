"""What ``simnpo llm`` does for any benchmark: one TrainerConfig per method, then for each method unlearn from the
starting model, evaluate at the chosen epochs and save the final model. The benchmark supplies how its data is
encoded and how a model is evaluated.

Per method ``METHOD/`` holds ``checkpoint/`` (resume), ``evals/epochN/<results file>`` at every evaluation point,
``history.json`` (one summary per evaluation) and the final ``model/``. A finished method (its ``history.json``
complete) is skipped when the same command runs again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from simnpo.llm.models import load_model, load_tokenizer
from simnpo.llm.presets import method_values
from simnpo.llm.trainer import TrainerConfig, UnlearningData, merged, unlearn
from simnpo.runs import read_json, write_json


@dataclass(frozen=True)
class LLMRunConfig:
    """What ``simnpo llm`` runs: the methods, and when to evaluate (every ``eval_every`` epochs and after the
    last)."""

    methods: tuple[str, ...] = ("npo_nll", "simnpo_nll")
    eval_every: int = 0
    trainers: tuple[TrainerConfig, ...] = ()  # one per method, as resolved (saved in config.json)

    def __post_init__(self) -> None:
        if self.eval_every < 0:
            raise ValueError(f"--eval-every must be >= 0 epochs, got {self.eval_every}")


def method_configs(methods: tuple[str, ...], preset: str, given: dict) -> dict[str, TrainerConfig]:
    """One TrainerConfig per method: the preset's shared values < its values for the method < ``given`` (the
    command-line options, for every method)."""
    if not methods:
        raise ValueError("give at least one method with --methods")
    out = {}
    for method in methods:
        values = method_values(preset, method, given)
        fields = {k: v for k, v in values.items() if k in TrainerConfig.__dataclass_fields__}
        out[method] = TrainerConfig(**{**fields, "method": method})
    return out


def describe_methods(preset: str, configs: dict) -> str:
    """What each method runs with: the values that set methods apart, then those every method shares."""
    values = {method: dataclasses.asdict(config) for method, config in configs.items()}
    first = next(iter(values.values()))
    loss_fields = ("beta", "margin", "margin_convention", "forget_weight", "retain_weight")
    shared = [
        k for k in first if k != "method" and k not in loss_fields and all(v[k] == first[k] for v in values.values())
    ]
    lines = [f"preset {preset}:"]
    for method, v in values.items():
        lines.append(f"  {method}: " + ", ".join(f"{k}={v[k]}" for k in v if k != "method" and k not in shared))
    lines.append("  every method: " + ", ".join(f"{k}={first[k]}" for k in shared))
    return "\n".join(lines)


def unlearn_each(
    run: LLMRunConfig,
    start: str | Path,
    pad_token: str | None,
    folder: Path,
    accelerator,
    progress,
    encode: Callable[[object, TrainerConfig], UnlearningData],
    evaluate: Callable[[object, object], tuple[dict, dict]],
    results_file: str,
) -> list[dict]:
    """Unlearn each method of ``run`` from the model at ``start``; ``encode(tokenizer, config)`` gives the data,
    ``evaluate(model, tokenizer)`` the full results and their summary. Returns each method's last summary."""
    finals = []
    for method, config in zip(run.methods, run.trainers):
        out = folder / method
        history_path = out / "history.json"
        history = read_json(history_path) if history_path.is_file() else []
        if history and history[-1]["epoch"] == config.epochs:
            finals.append(history[-1])
            continue
        tokenizer = load_tokenizer(start, pad_token)
        model = load_model(start, "cpu")

        def evaluate_epoch(model, epoch: int, out=out, history=history, tokenizer=tokenizer) -> None:
            results, summary = evaluate(model, tokenizer)
            if accelerator.is_main_process:
                write_json(out / "evals" / f"epoch{epoch}" / results_file, results)
                history.append({**summary, "epoch": epoch})
                write_json(out / "history.json", history)

        final = unlearn(
            model, encode(tokenizer, config), config, accelerator, out, evaluate_epoch, run.eval_every, progress
        )
        if accelerator.is_main_process:
            merged(final).save_pretrained(str(out / "model"))
            tokenizer.save_pretrained(str(out / "model"))
        accelerator.wait_for_everyone()
        finals.append(read_json(history_path)[-1])
    return finals
