"""``simnpo eval --bench tofu`` and ``simnpo llm --bench tofu``: check every input first, build what is missing,
evaluate each model; for ``llm``, then unlearn with each method (``unlearn_runs``) and evaluate each.

With no model given, the built-in mini-TOFU's retain model is evaluated (its forget quality against itself is
1.0), then the target with the retain model's per-item truth ratios as the forget-quality reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from simnpo.llm.builtin_tofu import BUILTIN_TEMPLATE, DEFAULT_CACHE, MiniTofu, ensure_model, mini_tofu
from simnpo.llm.finetune import FinetuneConfig, progress_callbacks
from simnpo.llm.models import check_source, load_model, load_tokenizer, model_type, quiet_hugging_face
from simnpo.llm.templates import resolve_template, template_named
from simnpo.llm.tofu_data import FORGET_SPLITS, PERTURBED_SETS, load_tofu, require_pad_token
from simnpo.llm.tofu_eval import ORIGINAL_MAX_ITEMS, TofuEvalConfig, evaluate_tofu, retain_truth_ratios, summary
from simnpo.llm.tofu_metrics import forget_quality
from simnpo.llm.trainer import encode_unlearning_data
from simnpo.llm.unlearn_runs import LLMRunConfig, unlearn_each
from simnpo.runs import read_json, write_json


@dataclass(frozen=True)
class EvalRequest:
    """What to evaluate: a model (None = the built-in ones), its data, and the forget-quality reference."""

    model: str | None = None
    data: str = "builtin"
    retain_results: Path | None = None
    pad_token: str | None = None
    device: str = "cpu"
    finetune_epochs: int = 30
    cache_dir: Path = DEFAULT_CACHE


@dataclass
class EvalPlan:
    data: str
    config: TofuEvalConfig  # as asked, with the prompt template resolved
    template_reason: str = ""  # why this template: given with --template, or detected from what
    models: list[tuple[str, str | Path]] = field(default_factory=list)  # (label, folder or hub id), in order
    retain_ratios: list[float] | None = None
    assets: MiniTofu | None = None


def resolve_eval_template(request: EvalRequest, config: TofuEvalConfig) -> tuple[TofuEvalConfig, str]:
    """``config`` with its prompt template resolved, and why: for a given model the named template checked
    against its tokenizer, or the one detected from it (its tokenizer is loaded, the model is not); for the
    built-in models the named tag template or the built-in's, which their tokenizer is trained on."""
    if request.model is None:
        template = template_named(config.template or BUILTIN_TEMPLATE)
        reason = "--template" if config.template else "the built-in's"
        if template.chat:
            raise ValueError("the built-in mini-TOFU's tokenizer has no chat template; use --template llama2 or phi")
    else:
        check_source(request.model, "model")
        tokenizer = load_tokenizer(request.model, request.pad_token)
        template, reason = resolve_template(config.template, tokenizer, model_type(request.model), request.model)
    return replace(config, template=template.name), reason


def plan_tofu_eval(request: EvalRequest, config: TofuEvalConfig) -> EvalPlan:
    """Check every input (data files and fields, tokenizers, the retain results and their size) before anything
    is written; raises ValueError with one line on the first problem."""
    quiet_hugging_face()
    if request.finetune_epochs < 1:
        raise ValueError(f"--finetune-epochs must be >= 1, got {request.finetune_epochs}")
    config, reason = resolve_eval_template(request, config)
    builtin = request.data == "builtin"
    if builtin:
        ft_config = FinetuneConfig(epochs=request.finetune_epochs)
        assets = mini_tofu(request.cache_dir, finetune_config=ft_config, template=config.prompt_template())
        plan = EvalPlan(str(assets.data), config, reason, assets=assets)
    else:
        plan = EvalPlan(request.data, config, reason)
    forget_rows = load_tofu(plan.data, f"{config.split}_perturbed")
    for name in PERTURBED_SETS:
        load_tofu(plan.data, name)
    n_forget = min(len(forget_rows), ORIGINAL_MAX_ITEMS) if config.protocol == "original" else len(forget_rows)
    if request.model is not None:
        require_pad_token(load_tokenizer(request.model, request.pad_token), request.model)
        plan.models.append(("model", request.model))
    else:
        plan.models.append(("target", assets.model("target")))
    if request.retain_results is not None:
        plan.retain_ratios = retain_truth_ratios(request.retain_results, config.split)
        if len(plan.retain_ratios) != n_forget:
            raise ValueError(
                f"{request.retain_results} holds {len(plan.retain_ratios)} forget items but "
                f"{config.split} has {n_forget}; give the retain model's results for the same split"
            )
    elif builtin:
        plan.models.insert(0, ("retain", assets.model(FORGET_SPLITS[config.split])))
    return plan


def run_tofu_eval(
    request: EvalRequest,
    plan: EvalPlan,
    folder: Path,
    progress,
    accelerator=None,
    reuse: bool = False,
) -> tuple[list[list[str]], list[str]]:
    """Evaluate the planned models in order; write ``LABEL/TOFU_EVAL.json`` and ``LABEL/TOFU_SUMMARY.json`` for
    each and ``summary.json`` for all; return the terminal table's rows and notes to print under it. With an
    ``accelerator`` of several processes the items are shared out and only the main process writes. ``reuse``
    (a resumed run of the same configuration) keeps evaluations already written instead of redoing them."""
    main = accelerator is None or accelerator.is_main_process
    config = plan.config
    summaries, rows, notes = {}, [], []
    retain_ratios = plan.retain_ratios
    for label, source in plan.models:
        if reuse and (folder / label / "TOFU_SUMMARY.json").is_file():
            summaries[label] = read_json(folder / label / "TOFU_SUMMARY.json")
            rows.append(table_row(label, summaries[label]))
            if label == "retain":
                retain_ratios = retain_truth_ratios(folder / label / "TOFU_EVAL.json", config.split)
            continue
        if plan.assets is not None and isinstance(source, Path):
            if main:
                ensure_model(plan.assets, source.name, *progress_callbacks(progress, f"fine-tune built-in {label}"))
            if accelerator is not None:
                accelerator.wait_for_everyone()
        tokenizer = load_tokenizer(source, request.pad_token)
        model = load_model(source, request.device if accelerator is None else accelerator.device)
        advance = progress(f"evaluate {label}", 4)
        results = evaluate_tofu(
            model,
            tokenizer,
            plan.data,
            config,
            None if label == "retain" else retain_ratios,
            step=lambda name, advance=advance: advance(1),
            accelerator=accelerator,
        )
        ratios = [v["score"] for v in results["forget_truth_ratio"]["value_by_index"].values()]
        if label == "retain":  # the reference of every later model, and 1.0 against itself
            retain_ratios = ratios
            results["forget_quality"] = {"agg_value": forget_quality(ratios, ratios), "reference": "itself"}
        summaries[label] = {**summary(results), "source": str(source)}
        if main:
            write_json(folder / label / "TOFU_EVAL.json", results)
            write_json(folder / label / "TOFU_SUMMARY.json", summaries[label])
        rows.append(table_row(label, summaries[label]))
        if results["forget_quality"]["agg_value"] is None:
            notes.append(f"forget quality of {label} unavailable: {results['forget_quality']['reason']}")
    if main:
        write_json(folder / "summary.json", summaries)
    return rows, notes


def table_row(label: str, s: dict) -> list[str]:
    fq = "n/a" if s["forget_quality"] is None else f"{s['forget_quality']:.3g}"
    cells = [
        s["model_utility"],
        s["forget_truth_ratio"],
        s["forget_Q_A_Prob"],
        s["forget_Q_A_ROUGE"],
        s["forget_answer_loss_per_token"],
    ]
    return [label, fq] + [f"{v:.3f}" for v in cells]


def run_llm_tofu(
    request: EvalRequest, run: LLMRunConfig, plan: EvalPlan, folder: Path, accelerator, progress
) -> tuple[list[list[str]], list[str]]:
    """Evaluate the starting points, then unlearn and evaluate each method; returns the table rows and notes."""
    eval_config = plan.config
    rows, notes = run_tofu_eval(request, plan, folder, progress, accelerator, reuse=True)
    start = plan.models[-1][1]  # the target (built-in) or the given model
    retain_file = folder / "retain" / "TOFU_EVAL.json"  # the built-in retain model, evaluated just above
    retain_ratios = retain_truth_ratios(retain_file, eval_config.split) if retain_file.is_file() else plan.retain_ratios
    forget_rows = load_tofu(plan.data, eval_config.split)
    retain_rows = load_tofu(plan.data, FORGET_SPLITS[eval_config.split])

    def encode(tokenizer, config):
        return encode_unlearning_data(
            tokenizer,
            eval_config.prompt_template(),
            forget_rows,
            retain_rows,
            config.method,
            config.max_length,
            config.seed,
        )

    def evaluate(model, tokenizer):
        results = evaluate_tofu(model, tokenizer, plan.data, eval_config, retain_ratios, accelerator=accelerator)
        return results, summary(results)

    finals = unlearn_each(
        run, start, request.pad_token, folder, accelerator, progress, encode, evaluate, "TOFU_EVAL.json"
    )
    rows += [table_row(method, final) for method, final in zip(run.methods, finals)]
    return rows, notes
