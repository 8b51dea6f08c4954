"""Relearning attack (the SimNPO paper's robustness claim; the authors' WMDP code relearns with plain NLL): fine-tune
an unlearned model with plain NLL on part of its forget set and measure how much of the forgotten knowledge
returns, as a curve over relearning steps.

Protocol (ours, stated because the paper's could not be read): a seeded ``fraction`` of the forget items, AdamW at
``lr`` without warm-up or decay, batches of ``batch_size`` drawn in seeded shuffled passes, TOFU evaluation of the
whole forget split (and model utility) at each step of ``eval_at``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from simnpo.llm.finetune import batch_nll
from simnpo.llm.models import load_model, load_tokenizer
from simnpo.llm.tofu_data import encode_qa, load_tofu
from simnpo.llm.tofu_eval import TofuEvalConfig, evaluate_tofu, retain_truth_ratios, summary
from simnpo.llm.tofu_run import EvalRequest, plan_tofu_eval
from simnpo.runs import read_json, write_json

CURVE_KEYS = ("forget_quality", "forget_truth_ratio", "forget_Q_A_Prob", "forget_Q_A_ROUGE", "model_utility")


@dataclass(frozen=True)
class RelearnConfig:
    fraction: float = 0.5
    steps: int = 50
    lr: float = 1e-4
    batch_size: int = 4
    eval_at: tuple[int, ...] = (0, 5, 10, 25, 50)
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.fraction <= 1:
            raise ValueError(f"--fraction must lie in (0, 1], got {self.fraction}")
        if self.steps < 1 or self.batch_size < 1 or not self.lr > 0:
            raise ValueError("relearning needs steps >= 1, batch size >= 1 and lr > 0")
        if not self.eval_at or any(s < 0 or s > self.steps for s in self.eval_at):
            raise ValueError(f"--eval-at steps must lie in [0, {self.steps}], got {list(self.eval_at)}")


def relearn(
    model_dir: str | Path,
    data: str,
    config: RelearnConfig,
    eval_config: TofuEvalConfig,
    retain_ratios: list[float] | None,
    folder: Path,
    device: str = "cpu",
    progress: Callable | None = None,
) -> dict:
    """Relearn, evaluating at ``config.eval_at``; writes ``folder/stepN/TOFU_EVAL.json`` and ``folder/relearn.json``
    (the curves) and returns the curves."""
    tokenizer, model = load_tokenizer(model_dir), load_model(model_dir, device)
    rows = load_tofu(data, eval_config.split)
    generator = torch.Generator().manual_seed(config.seed)
    chosen = torch.randperm(len(rows), generator=generator)[: max(1, round(config.fraction * len(rows)))]
    subset = [rows[i] for i in chosen.tolist()]
    template = eval_config.prompt_template()
    batch_data = encode_qa(tokenizer, template, [r["question"] for r in subset], [r["answer"] for r in subset])
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.0)
    curves: dict = {"steps": [], **{k: [] for k in CURVE_KEYS}, "relearn_items": len(subset)}
    advance = progress("relearn", config.steps) if progress else None
    order = torch.empty(0, dtype=torch.long)
    for step in range(config.steps + 1):
        if step in config.eval_at:
            model.eval()
            results = evaluate_tofu(model, tokenizer, data, eval_config, retain_ratios)
            write_json(folder / f"step{step}" / "TOFU_EVAL.json", results)
            curves["steps"].append(step)
            for key, value in summary(results).items():
                if key in CURVE_KEYS:
                    curves[key].append(value)
            write_json(folder / "relearn.json", curves)
        if step == config.steps:
            break
        if len(order) < config.batch_size:
            order = torch.cat([order, torch.randperm(len(subset), generator=generator)])
        idx, order = order[: config.batch_size], order[config.batch_size :]
        model.train()
        loss = batch_nll(model, batch_data[idx].trimmed().to(device))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        if advance:
            advance(1, f"loss {loss.item():.4f}")
    return curves


def relearn_targets(
    run: Path | None, model: str | None, data: str, config: TofuEvalConfig, retain_results, cache_dir: Path
):
    """What ``simnpo relearn`` relearns: every unlearned model of a ``simnpo llm`` run folder (with that run's data,
    split and retain reference), or one given model. Returns (targets, data path, eval config, retain ratios)."""
    if run is not None:
        if not (Path(run) / "config.json").is_file():
            raise ValueError(f"{run} is not a `simnpo llm` run folder (no config.json)")
        saved = read_json(Path(run) / "config.json")["configs"]
        if "LLMRunConfig" not in saved:
            raise ValueError(f"{run} is not a `simnpo llm` run folder")
        if "TofuEvalConfig" not in saved:
            raise ValueError(f"{run} is not a TOFU run: the relearning attack runs on `simnpo llm --bench tofu` runs")
        request = EvalRequest(**{**saved["EvalRequest"], "cache_dir": Path(saved["EvalRequest"]["cache_dir"])})
        evaluated = saved["TofuEvalConfig"]
        config = replace(
            config, split=evaluated["split"], protocol=evaluated["protocol"], template=evaluated.get("template")
        )
        targets = [(m, Path(run) / m / "model") for m in saved["LLMRunConfig"]["methods"]]
        targets = [(m, path) for m, path in targets if (path / "config.json").is_file()]
        if not targets:
            raise ValueError(f"{run} holds no finished unlearned model yet; run `simnpo llm` to the end first")
        plan = plan_tofu_eval(replace(request, model=None) if request.data == "builtin" else request, config)
        retain_file = Path(run) / "retain" / "TOFU_EVAL.json"
        ratios = retain_truth_ratios(retain_file, config.split) if retain_file.is_file() else plan.retain_ratios
        return targets, plan.data, plan.config, ratios
    request = EvalRequest(model=model, data=data, retain_results=retain_results, cache_dir=cache_dir)
    plan = plan_tofu_eval(request, config)
    return [("model", model)], plan.data, plan.config, plan.retain_ratios
