"""``simnpo llm --bench tofu``: evaluate the starting points, unlearn with each method, evaluate each, one table.

Run folder: ``config.json``; ``target/`` and ``retain/`` (or ``model/``) evaluations; per method ``METHOD/`` with
``checkpoint/`` (resume), ``evals/epochN/TOFU_EVAL.json`` at every evaluation point, ``history.json`` and the final
``model/``. A finished method (its ``history.json`` complete) is skipped when the same command runs again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from simnpo.llm.models import load_model, load_tokenizer
from simnpo.llm.tofu_data import FORGET_SPLITS, load_tofu
from simnpo.llm.tofu_eval import TofuEvalConfig, evaluate_tofu, retain_truth_ratios, summary
from simnpo.llm.tofu_run import EvalPlan, EvalRequest, run_tofu_eval, table_row
from simnpo.llm.trainer import TrainerConfig, encode_unlearning_data, merged, unlearn
from simnpo.runs import read_json, write_json

# β when the user gives none: open-unlearning's NPO/IdkPO default and the paper's SimNPO forget10 value
DEFAULT_BETA = {"npo": 0.1, "idkpo": 0.1, "simnpo": 4.5, "ga": 1.0, "graddiff": 1.0}


@dataclass(frozen=True)
class LLMRunConfig:
    """What ``simnpo llm`` runs: the starting model and data (as for ``simnpo eval``), the methods, and when to
    evaluate (every ``eval_every`` epochs and after the last)."""

    methods: tuple[str, ...] = ("npo_nll", "simnpo_nll")
    eval_every: int = 0
    trainers: tuple[TrainerConfig, ...] = ()  # one per method, as resolved (saved in config.json)

    def __post_init__(self) -> None:
        if self.eval_every < 0:
            raise ValueError(f"--eval-every must be >= 0 epochs, got {self.eval_every}")


def method_configs(methods: tuple[str, ...], base: dict) -> dict[str, TrainerConfig]:
    """One TrainerConfig per method; β defaults per method family unless given (``base`` holds resolved options)."""
    if not methods:
        raise ValueError("give at least one method with --methods")
    out = {}
    for method in methods:
        values = {k: v for k, v in base.items() if k in TrainerConfig.__dataclass_fields__}
        family = method.split("_")[0]
        values.setdefault("beta", base.get("betas", {}).get(family, DEFAULT_BETA.get(family, 1.0)))
        out[method] = TrainerConfig(**{**values, "method": method})
    return out


def run_llm_tofu(
    request: EvalRequest,
    run: LLMRunConfig,
    eval_config: TofuEvalConfig,
    plan: EvalPlan,
    folder: Path,
    accelerator,
    progress,
) -> tuple[list[list[str]], list[str]]:
    """Evaluate the starting points, then unlearn and evaluate each method; returns the table rows and notes."""
    rows, notes = run_tofu_eval(request, eval_config, plan, folder, progress, accelerator, reuse=True)
    start = plan.models[-1][1]  # the target (built-in) or the given model
    retain_file = folder / "retain" / "TOFU_EVAL.json"  # the built-in retain model, evaluated just above
    retain_ratios = retain_truth_ratios(retain_file, eval_config.split) if retain_file.is_file() else plan.retain_ratios
    forget_rows = load_tofu(plan.data, eval_config.split)
    retain_rows = load_tofu(plan.data, FORGET_SPLITS[eval_config.split])
    for method, config in zip(run.methods, run.trainers):
        out = folder / method
        history_path = out / "history.json"
        if history_path.is_file() and read_json(history_path)[-1]["epoch"] == config.epochs:
            rows.append(table_row(method, read_json(history_path)[-1]))
            continue
        tokenizer = load_tokenizer(start, request.pad_token)
        model = load_model(start, "cpu")
        data = encode_unlearning_data(tokenizer, forget_rows, retain_rows, method, config.max_length, config.seed)
        history = read_json(history_path) if history_path.is_file() else []

        evaluate = _evaluator(out, history, tokenizer, plan.data, eval_config, retain_ratios, accelerator)
        final = unlearn(model, data, config, accelerator, out, evaluate, run.eval_every, progress)
        if accelerator.is_main_process:
            merged(final).save_pretrained(str(out / "model"))
            tokenizer.save_pretrained(str(out / "model"))
        accelerator.wait_for_everyone()
        rows.append(table_row(method, read_json(history_path)[-1]))
    return rows, notes


def _evaluator(out: Path, history: list, tokenizer, data: str, config: TofuEvalConfig, retain_ratios, accelerator):
    """The callback the trainer calls at each evaluation point: evaluate, then (main process) write the results
    and append the summary to ``history.json``."""

    def evaluate(model, epoch: int) -> None:
        results = evaluate_tofu(model, tokenizer, data, config, retain_ratios, accelerator=accelerator)
        if accelerator.is_main_process:
            write_json(out / "evals" / f"epoch{epoch}" / "TOFU_EVAL.json", results)
            history.append({**summary(results), "epoch": epoch})
            write_json(out / "history.json", history)

    return evaluate
