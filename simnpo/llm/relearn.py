"""Relearning attack (the SimNPO paper's robustness claim; the authors' WMDP code relearns with plain NLL): fine-tune
an unlearned model with plain NLL on part of its forget set and measure how much of the forgotten knowledge
returns, as a curve over relearning steps, on any benchmark.

Protocol (ours, stated because the paper's could not be read): a seeded ``fraction`` of the forget set as the
benchmark encodes it for unlearning (or ``samples`` of it), AdamW at ``lr``, constant after ``warmup_steps`` of
linear warm-up, batches of ``batch_size`` drawn in seeded shuffled passes, the benchmark's evaluation at each step of
``eval_at``; where the benchmark's forget rows are its evaluation items (TOFU), the items not relearned are also
scored on their own (``held_out``: the knowledge that returns without being shown). The authors' WMDP relearning
(400 forget samples, lr 1e-5, 100 steps, 10 warm-up steps) is ``samples=400, lr=1e-5, steps=100,
warmup_steps=10``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch

from simnpo.llm.benchmark import Benchmark, Plan, Request
from simnpo.llm.finetune import lr_schedule, train_nll
from simnpo.llm.models import load_model, load_tokenizer
from simnpo.llm.trainer import TrainerConfig
from simnpo.runs import EVALUATION, RELEARN_FILE, REQUEST, RUN, read_config, read_json, write_json
from simnpo.sampling import seeded, spanning_batches


@dataclass(frozen=True)
class RelearnConfig:
    fraction: float = 0.5
    steps: int = 50
    lr: float = 1e-4
    batch_size: int = 4
    eval_at: tuple[int, ...] = (0, 5, 10, 25, 50)
    seed: int = 0
    samples: int | None = None  # relearn on this many forget rows instead of ``fraction`` of them
    warmup_steps: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.fraction <= 1:
            raise ValueError(f"--fraction must lie in (0, 1], got {self.fraction}")
        if self.steps < 1 or self.batch_size < 1 or not self.lr > 0:
            raise ValueError("relearning needs steps >= 1, batch size >= 1 and lr > 0")
        if (self.samples is not None and self.samples < 1) or self.warmup_steps < 0:
            raise ValueError("relearning needs --samples >= 1 and --warmup-steps >= 0")
        if not self.eval_at or any(s < 0 or s > self.steps for s in self.eval_at):
            raise ValueError(f"--eval-at steps must lie in [0, {self.steps}], got {list(self.eval_at)}")


@dataclass
class RelearnPlan:
    """What to relearn: the benchmark's plan, the reference, and per unlearned model its folder and the trainer
    config its forget data is encoded with."""

    plan: Plan
    reference: Any
    targets: list[tuple[str, Path, TrainerConfig]]


def relearn(
    bench: Benchmark,
    target: tuple[str, Path, TrainerConfig],
    plan: Plan,
    reference: Any,
    config: RelearnConfig,
    folder: Path,
    device: str = "cpu",
    progress: Callable | None = None,
) -> dict:
    """Relearn one model, evaluating at ``config.eval_at``; writes ``folder/stepN/<results file>`` and
    ``folder/relearn.json`` (the curves) and returns the curves."""
    _, model_dir, trainer_config = target
    tokenizer, model = load_tokenizer(model_dir), load_model(model_dir, device)
    forget = bench.encode(tokenizer, plan, trainer_config).forget
    generator = seeded(config.seed)
    if config.samples is not None and config.samples > len(forget):
        raise ValueError(f"--samples {config.samples} exceeds the {len(forget)} forget rows; give fewer")
    count = config.samples if config.samples is not None else max(1, round(config.fraction * len(forget)))
    chosen = torch.randperm(len(forget), generator=generator)[:count]
    curves: dict = {"steps": [], **{k: [] for k in bench.table.curve_keys}, "relearn_items": len(chosen)}
    if bench.held_out is not None:
        curves["held_out"] = {}  # the same metrics on the forget items not relearned: what returns unshown
        curves["relearned_rows"] = chosen.tolist()

    def evaluate(step: int) -> None:
        if step not in config.eval_at:
            return
        results = bench.evaluate(model.eval(), tokenizer, plan, reference)
        write_json(folder / f"step{step}" / bench.results_file, results)
        curves["steps"].append(step)
        summary = bench.summary(results)
        for key in bench.table.curve_keys:
            curves[key].append(summary[key])
        if bench.held_out is not None:
            for key, value in bench.held_out(results, chosen.tolist(), plan, reference).items():
                curves["held_out"].setdefault(key, []).append(value)
        write_json(folder / RELEARN_FILE, curves)

    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.0)
    warmup = torch.optim.lr_scheduler.LambdaLR(optimiser, lr_schedule("constant", config.steps, config.warmup_steps))
    batches = spanning_batches(len(chosen), config.batch_size, generator, config.steps)
    advance = progress("relearn", config.steps) if progress else None
    train_nll(model, forget[chosen], batches, optimiser, warmup, before_step=evaluate, advance=advance)
    evaluate(config.steps)
    return curves


def plan_from_run(bench: Benchmark, run: Path, overrides: dict) -> tuple[RelearnPlan, Any]:
    """Relearn every finished unlearned model of a ``simnpo llm`` run folder, with that run's data, settings (with
    ``overrides``, e.g. a generation length), trainer configs and reference. Returns the plan and the settings."""
    saved = read_config(run)["configs"]
    if RUN not in saved or EVALUATION not in saved:
        raise ValueError(f"{run} is not a `simnpo llm` run folder")
    names = {f.name for f in fields(bench.settings)}
    values = {k: v for k, v in {**saved[EVALUATION], **overrides}.items() if k in names}
    request = Request(**saved.get(REQUEST, {}))
    request = replace(request, cache_dir=Path(request.cache_dir) if request.cache_dir else None)
    plan = bench.plan(request, bench.settings(**values))
    reference = plan.reference
    if plan.reference_model and (run / plan.reference_model / bench.results_file).is_file():
        reference = bench.reference_of(read_json(run / plan.reference_model / bench.results_file))
    trainers = [TrainerConfig.from_saved(entry) for entry in saved[RUN]["trainers"]]
    targets = [(t.method, run / t.method / "model", t) for t in trainers]
    targets = [target for target in targets if (target[1] / "config.json").is_file()]
    if not targets:
        raise ValueError(f"{run} holds no finished unlearned model yet; run `simnpo llm` to the end first")
    return RelearnPlan(plan, reference, targets), plan.settings


def plan_for_model(bench: Benchmark, request: Request, settings: Any) -> RelearnPlan:
    """Relearn one given unlearned model on ``request.data`` (its forget data encoded at the trainer's defaults)."""
    plan = bench.plan(request, settings)
    return RelearnPlan(plan, plan.reference, [("model", Path(request.model), TrainerConfig())])
