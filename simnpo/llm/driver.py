"""One driver for every benchmark (``benchmark.Benchmark``): evaluate the planned models in order, then for
``simnpo llm`` unlearn with each method from the starting model, evaluating at the chosen epochs.

A run folder holds, per evaluated model, ``LABEL/<results file>`` (the benchmark's own layout) and
``LABEL/<summary file>``, and ``summary.json`` for all; per method ``METHOD/`` holds ``checkpoint/`` (resume),
``evals/epochN/<results file>`` at every evaluation point, ``history.json`` (one summary per evaluation) and the final
``model/``. A rerun of the same command resumes: written evaluations are kept and finished methods skipped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simnpo.llm.benchmark import Benchmark, Plan, Request
from simnpo.llm.distributed import plain_loading, save_model
from simnpo.llm.models import load_model, load_tokenizer
from simnpo.llm.presets import method_values
from simnpo.llm.runtime import log_numbers, tracked_run
from simnpo.llm.trainer import TrainerConfig, unlearn
from simnpo.runs import HISTORY_FILE, SUMMARY_FILE, evaluation_file, read_json, write_json


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


def method_configs(methods: tuple[str, ...], name: str, preset: dict, given: dict) -> dict[str, TrainerConfig]:
    """One TrainerConfig per method: the preset's shared values < its values for the method < ``given`` (the
    command-line options, for every method)."""
    if not methods:
        raise ValueError("give at least one method with --methods")
    return {m: TrainerConfig.for_method(m, method_values(name, preset, m, given)) for m in methods}


def flat_values(config: TrainerConfig) -> dict:
    """A TrainerConfig as one flat dict of option values (its loss's fields first)."""
    values = dataclasses.asdict(config)
    return {**values.pop("loss"), **values}


def describe_methods(preset: str, configs: dict[str, TrainerConfig]) -> str:
    """What each method runs with: the values that set methods apart, then those every method shares."""
    values = {method: flat_values(config) for method, config in configs.items()}
    first = next(iter(values.values()))
    loss_fields = ("beta", "margin", "margin_convention", "forget_weight", "retain_weight")
    shared = [k for k in first if k not in ("method", *loss_fields) and all(v[k] == first[k] for v in values.values())]
    lines = [f"preset {preset}:"]
    for method, v in values.items():
        lines.append(f"  {method}: " + ", ".join(f"{k}={v[k]}" for k in v if k != "method" and k not in shared))
    lines.append("  every method: " + ", ".join(f"{k}={first[k]}" for k in shared))
    return "\n".join(lines)


def evaluate_models(
    bench: Benchmark, request: Request, plan: Plan, folder: Path, progress, accelerator, reuse: bool = False
) -> tuple[list[list[str]], list[str], Any]:
    """Evaluate the planned models in order (making built-in ones on first use); write each model's results and
    summary and ``summary.json``. The reference model, when planned, is scored against itself and its results give
    every later model's reference. The items are shared out across the accelerator's processes and only the main
    process writes; every model runs under the accelerator's precision (``accelerator.autocast``), as the unlearned
    ones do. ``reuse`` (a resumed run) keeps evaluations already written. Returns the table rows, notes to print
    under it, and the reference."""
    main = accelerator.is_main_process
    results_file, summary_file = bench.results_file, bench.summary_file
    summaries, rows, notes, reference = {}, [], [], plan.reference
    for label, source in plan.models:
        own = label == plan.reference_model
        if reuse and (folder / label / summary_file).is_file():
            summaries[label] = read_json(folder / label / summary_file)
            if own:
                reference = bench.reference_of(read_json(folder / label / results_file))
        else:
            if plan.build is not None and isinstance(source, Path):
                if main:
                    plan.build(source.name, progress)
                accelerator.wait_for_everyone()
            tokenizer = load_tokenizer(source, request.pad_token)
            with plain_loading(accelerator):  # evaluated on its own: whole weights, never ZeRO-3 placeholders
                model = load_model(source, accelerator.device, request.torch_dtype)
            advance = progress(f"evaluate {label}", bench.eval_parts)
            with accelerator.autocast():
                results = bench.evaluate(model, tokenizer, plan, None if own else reference, advance, accelerator)
            del model  # one evaluated model in memory at a time
            if own:
                results, reference = bench.against_itself(results)
            summaries[label] = {**bench.summary(results), "source": str(source)}
            if main:
                write_json(folder / label / results_file, results)
                write_json(folder / label / summary_file, summaries[label])
            if (note := bench.note(label, results)) is not None:
                notes.append(note)
        rows.append([label, *bench.table.row(summaries[label])])
    if main:
        write_json(folder / SUMMARY_FILE, summaries)
    return rows, notes, reference


def run_llm(
    bench: Benchmark, request: Request, run: LLMRunConfig, plan: Plan, folder: Path, accelerator, progress
) -> tuple[list[list[str]], list[str], Any]:
    """Evaluate the starting points, then unlearn and evaluate each method; returns the table rows, notes and the
    reference."""
    rows, notes, reference = evaluate_models(bench, request, plan, folder, progress, accelerator, reuse=True)

    def evaluate(model, tokenizer) -> tuple[dict, dict]:
        with accelerator.autocast():
            results = bench.evaluate(model, tokenizer, plan, reference, None, accelerator)
        return results, bench.summary(results)

    encode = lambda tokenizer, config: bench.encode(tokenizer, plan, config)  # noqa: E731
    unlearn_each(run, request, plan.models[-1][1], folder, accelerator, progress, encode, evaluate, bench)
    if accelerator.is_main_process:  # the one process that prints, and has written every history
        method_rows, best_notes = best_and_last(bench, run.methods, plan, folder)
        rows, notes = rows + method_rows, notes + best_notes
    return rows, notes, reference


def best_and_last(bench: Benchmark, methods: tuple[str, ...], plan: Plan, folder: Path):
    """Per method its last evaluation (``METHOD``) and, where the benchmark has a best-point rule and the method was
    evaluated more than once, its best one by that rule (``METHOD best, epoch N`` and ``METHOD last, epoch M``, or
    ``METHOD best = last, epoch M``); rows and lines to print under the table."""
    summaries = read_json(folder / SUMMARY_FILE)
    start = summaries[plan.models[-1][0]]
    reference = summaries.get(plan.reference_model) if plan.reference_model else None
    rows, notes, ruled = [], [], False
    for method in methods:
        history = read_json(folder / method / HISTORY_FILE)
        last = history[-1]
        if bench.best is None or len(history) < 2:
            rows.append([method, *bench.table.row(last)])
            continue
        ruled = True
        best = bench.best[1](history, start, reference)
        if best is None:
            notes.append(f"{method}: no evaluation meets the best-point rule")
        elif best["epoch"] != last["epoch"]:
            rows.append([f"{method} best, epoch {best['epoch']}", *bench.table.row(best)])
        label = "best = last" if best is not None and best["epoch"] == last["epoch"] else "last"
        rows.append([f"{method} {label}, epoch {last['epoch']}", *bench.table.row(last)])
    return rows, ([f"best: {bench.best[0]}"] if ruled else []) + notes


def unlearn_each(
    run: LLMRunConfig,
    request: Request,
    start: str | Path,
    folder: Path,
    accelerator,
    progress,
    encode: Callable,
    evaluate: Callable[[object, object], tuple[dict, dict]],
    bench: Benchmark,
) -> None:
    """Unlearn each method of ``run`` from the model at ``start`` (the target or the given model);
    ``encode(tokenizer, config)`` gives the data, ``evaluate(model, tokenizer)`` the full results and their summary.
    A method is finished when its last evaluation and its final model are written; each method's models are freed
    before the next starts."""
    for method, config in zip(run.methods, run.trainers):
        out = folder / method
        history = read_json(out / HISTORY_FILE) if (out / HISTORY_FILE).is_file() else []
        if history and history[-1]["epoch"] == config.epochs and (out / "model" / "config.json").is_file():
            continue
        tokenizer = load_tokenizer(start, request.pad_token)
        model = load_model(start, "cpu", request.torch_dtype)  # under ZeRO-3 with zero3_init_flag: built sharded

        data = encode(tokenizer, config)
        steps_per_epoch = config.steps_per_epoch(len(data.forget))

        def evaluate_epoch(model, epoch: int, out=out, history=history, tokenizer=tokenizer, steps=steps_per_epoch):
            results, summary = evaluate(model, tokenizer)
            log_numbers(accelerator, summary, epoch * steps, prefix="eval/")  # after that epoch's last step
            if accelerator.is_main_process:
                write_json(evaluation_file(out, epoch, bench.results_file), results)
                history.append({**summary, "epoch": epoch})
                write_json(out / HISTORY_FILE, history)

        with tracked_run(accelerator, method, lambda config=config: flat_values(config)):
            final = unlearn(model, data, config, accelerator, out, evaluate_epoch, run.eval_every, progress)
        save_model(final, accelerator, out / "model", tokenizer)
        del model, final, data
        accelerator.free_memory()  # the prepared model and optimizer: the next method starts with an empty device
