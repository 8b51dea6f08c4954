"""TOFU as a benchmark of the driver (``simnpo/llm/benchmark.py``): its settings, plan, evaluation, reference and
table.

With no model given, the built-in mini-TOFU's retain model is evaluated first (its forget quality against itself is
1.0); its per-item forget truth ratios are the forget-quality reference of every later model. A given model is
compared with the retain model's results given as ``retain_results`` (ours or open-unlearning's), else its forget
quality is reported as unavailable.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from simnpo.llm.benchmark import Benchmark, Plan, Request, Table
from simnpo.llm.data import require_pad_token
from simnpo.llm.finetune import FinetuneConfig
from simnpo.llm.models import check_source, load_tokenizer, model_type, quiet_hugging_face
from simnpo.llm.templates import Template, resolve_template, template_named
from simnpo.llm.tofu import metrics as M
from simnpo.llm.tofu import presets
from simnpo.llm.tofu.builtin import BUILTIN_TEMPLATE, DEFAULT_CACHE, ensure_model, mini_tofu
from simnpo.llm.tofu.data import FORGET_SPLITS, PERTURBED_SETS, REFUSALS, encode_qa, load_tofu
from simnpo.llm.tofu.evaluate import (
    ORIGINAL_MAX_ITEMS,
    TofuEvalConfig,
    evaluate_tofu,
    summary,
)
from simnpo.llm.tofu.metrics import forget_ratios
from simnpo.llm.tofu.privacy import holdout_split, privleak_entry
from simnpo.llm.tofu.reference import TofuReference, reference_of, retain_reference
from simnpo.llm.trainer import UnlearningData
from simnpo.losses import Read, method_reads
from simnpo.runs import TEMPLATE

OPTIONS = (
    "split",
    "protocol",
    "template",
    "max_new_tokens",
    "retain_results",
    "eval_batch_size",
    "generation_batch_size",
    "mia",
    "mia_reference",
)


def resolve(request: Request, settings: TofuEvalConfig) -> tuple[TofuEvalConfig, list[str]]:
    """``settings`` with the prompt template resolved, and a line saying which and why: for a given model the named
    template checked against its tokenizer, or the one detected from it (the tokenizer is loaded, the model is
    not); for the built-in models the named tag template or the built-in's, which their tokenizer is trained on."""
    if request.model is None:
        template = template_named(settings.template or BUILTIN_TEMPLATE)
        reason = "--template" if settings.template else "the built-in's"
        if template.chat:
            raise ValueError("the built-in mini-TOFU's tokenizer has no chat template; use --template llama2 or phi")
    else:
        check_source(request.model, "model")
        tokenizer = load_tokenizer(request.model, request.pad_token)
        require_pad_token(tokenizer, request.model)
        template, reason = resolve_template(settings.template, tokenizer, model_type(request.model), request.model)
    return replace(settings, template=template.name), [template.describe(reason)]


def plan(request: Request, settings: TofuEvalConfig, train: bool = False) -> Plan:
    """Check every input (data files and fields, tokenizers, the retain results and their size) and make the
    built-in data when it is the data; raises ValueError with one line on the first problem."""
    quiet_hugging_face()
    settings, notes = resolve(request, settings)
    epochs = FinetuneConfig().epochs if request.finetune_epochs is None else request.finetune_epochs
    if epochs < 1:
        raise ValueError(f"--finetune-epochs must be >= 1, got {epochs}")
    assets = None
    if request.data == "builtin":
        cache = request.cache_dir or DEFAULT_CACHE
        # a given model reads the built-in data in its own template; the built-in tokenizer and models are trained on
        # the run's tag template, or TOFU's Llama-2 tags when the data is all that is used
        own = settings.prompt_template() if request.model is None else template_named(BUILTIN_TEMPLATE)
        assets = mini_tofu(cache, finetune_config=FinetuneConfig(epochs=epochs), template=own)
    result = Plan(str(assets.data) if assets else request.data, settings, notes=notes)
    forget_rows = load_tofu(result.data, f"{settings.split}_perturbed")
    for name in (
        *PERTURBED_SETS,
        holdout_split(settings.split),
        *((settings.split, FORGET_SPLITS[settings.split]) if train else ()),
    ):
        load_tofu(result.data, name)
    if request.model is not None:  # its tokenizer was checked by `resolve`
        result.models.append(("model", request.model))
    else:
        result.models.append(("target", assets.model("target")))
        result.build = lambda name, progress: ensure_model(assets, name, progress)
    if settings.mia_reference is not None:
        check_source(settings.mia_reference, "model")
    if settings.retain_results is not None:
        n_forget = len(forget_rows[:ORIGINAL_MAX_ITEMS] if settings.protocol == "original" else forget_rows)
        result.reference = retain_reference(settings.retain_results, settings.split, settings.protocol)
        if len(result.reference.ratios) != n_forget:
            raise ValueError(
                f"{settings.retain_results} holds {len(result.reference.ratios)} forget items but "
                f"{settings.split} has {n_forget}; give the retain model's results for the same split"
            )
    elif request.model is None:  # the built-in retain model is the built-in target's reference, not another model's
        result.models.insert(0, ("retain", assets.model(FORGET_SPLITS[settings.split])))
        result.reference_model = "retain"
    return result


def evaluate(model, tokenizer, plan: Plan, reference: TofuReference | None, advance=None, accelerator=None) -> dict:
    ratios, auc = (reference.ratios, reference.mia_auc) if reference else (None, None)
    return evaluate_tofu(model, tokenizer, plan.data, plan.settings, ratios, advance, accelerator, auc)


def against_itself(results: dict) -> tuple[dict, TofuReference]:
    """The retain model's forget quality (1.0) and privleak (0) against itself; its results are every later model's
    reference."""
    reference = reference_of(results)
    quality = M.forget_quality(reference.ratios, reference.ratios)
    results["forget_quality"] = {"agg_value": quality, "reference": "itself"}
    results["privleak"] = privleak_entry(results, reference.mia_auc) | {"reference": "itself"}
    return results, reference


def note(label: str, results: dict) -> str | None:
    quality = results["forget_quality"]
    if quality["agg_value"] is not None:
        return None
    return f"forget quality of {label} unavailable, privleak against AUC 0.5: {quality['reason']}"


def encode(tokenizer, plan: Plan, config) -> UnlearningData:
    """The forget and retain pairs of the split encoded with the run's template (as the evaluation encodes them),
    and each forget question with a seeded refusal when the method needs one (IdkPO)."""
    settings: TofuEvalConfig = plan.settings
    forget_rows, retain_rows = load_tofu(plan.data, settings.split), load_tofu(plan.data, FORGET_SPLITS[settings.split])
    return encode_unlearning_data(
        tokenizer,
        settings.prompt_template(),
        forget_rows,
        retain_rows,
        config.method,
        config.max_length,
        config.seed,
        settings.open_unlearning,
    )


def encode_unlearning_data(
    tokenizer,
    template: Template,
    forget_rows,
    retain_rows,
    method: str,
    max_length: int,
    seed: int,
    mask_pad_tokens: bool = False,
) -> UnlearningData:
    """Forget and retain pairs (and IdkPO's refusals) encoded as the evaluation encodes them, its attention mask
    included: open-unlearning trains through the same collator that it evaluates with."""

    def encoded(rows, answers):
        return encode_qa(tokenizer, template, [r["question"] for r in rows], answers, max_length, mask_pad_tokens)

    idk = None
    if Read("refusal", "sequence") in method_reads(method):
        choice = torch.randint(len(REFUSALS), (len(forget_rows),), generator=torch.Generator().manual_seed(seed))
        idk = encoded(forget_rows, [REFUSALS[i] for i in choice])
    forget = encoded(forget_rows, [r["answer"] for r in forget_rows])
    return UnlearningData(forget, encoded(retain_rows, [r["answer"] for r in retain_rows]), idk)


def best_point(history: list[dict], start: dict, reference: dict | None) -> dict | None:
    """The evaluation with the highest forget quality among those keeping model utility at 95 % of the starting
    model's or more (None when none does, or forget quality is unavailable)."""
    kept = [h for h in history if h["forget_quality"] is not None]
    kept = [h for h in kept if h["model_utility"] >= M.BEST_POINT_UTILITY * start["model_utility"]]
    return max(kept, key=lambda h: h["forget_quality"], default=None)


def held_out(results: dict, relearned: list[int], plan: Plan, reference) -> dict:
    """The forget metrics of the forget items a relearning attack did not train on (``relearned``: its rows of the
    forget split; evaluation items matched by question), forget quality against the retain model's same items."""
    questions = {load_tofu(plan.data, plan.settings.split)[i]["question"] for i in relearned}
    inputs = results["forget_Q_A_ROUGE"]["value_by_index"]
    items = [int(k) for k in sorted(inputs, key=int) if inputs[k]["input"] not in questions]
    return subset_summary(results, items, reference.ratios if reference else None)


def subset_summary(results: dict, items: list[int], retain_ratios: list[float] | None) -> dict:
    """The forget-set headline numbers of the forget items ``items`` alone: forget quality (against the retain
    model's ratios of the same items; None without them), truth ratio score, answer probability and ROUGE-L."""
    ratios = np.asarray(forget_ratios(results), float)[items]
    by_index = {key: results[key]["value_by_index"] for key in ("forget_Q_A_Prob", "forget_Q_A_ROUGE")}
    quality = None if retain_ratios is None else M.forget_quality(ratios, np.asarray(retain_ratios, float)[items])
    return {
        "forget_quality": quality,
        "forget_truth_ratio": M.forget_truth_ratio_score(ratios),
        "forget_Q_A_Prob": float(np.mean([by_index["forget_Q_A_Prob"][str(i)]["prob"] for i in items])),
        "forget_Q_A_ROUGE": float(np.mean([by_index["forget_Q_A_ROUGE"][str(i)]["rougeL_recall"] for i in items])),
        "items": len(items),
    }


def row(s: dict) -> list[str]:
    cells = [f"{s[key]:.3f}" for key in ("model_utility", "forget_truth_ratio", "forget_Q_A_Prob", "forget_Q_A_ROUGE")]
    privleak = "n/a" if s.get("privleak") is None else f"{s['privleak']:.1f}"
    return [_quality(s["forget_quality"]), *cells, privleak, f"{s['forget_answer_loss_per_token']:.3f}"]


def _quality(value) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def title(settings: TofuEvalConfig, after_unlearning: bool) -> str:
    if after_unlearning:
        return f"TOFU {settings.split}: before and after unlearning"
    return f"TOFU {settings.split} ({settings.protocol} protocol)"


TABLE = Table(
    columns=(
        "forget quality",
        "model utility",
        "forget truth ratio",
        "forget prob",
        "forget ROUGE-L",
        "privleak",
        "answer loss/token",
    ),
    row=row,
    title=title,
    relearn_columns=(
        ("forget_quality", "forget quality", _quality),
        ("forget_Q_A_Prob", "forget prob", lambda v: f"{v:.3f}"),
        ("forget_Q_A_ROUGE", "forget ROUGE", lambda v: f"{v:.3f}"),
    ),
    curve_keys=("forget_quality", "forget_truth_ratio", "forget_Q_A_Prob", "forget_Q_A_ROUGE", "model_utility"),
    utility=("model_utility", "model utility", lambda v: f"{v:.3f}"),
    knowledge="forget_Q_A_Prob",
)

BENCHMARK = Benchmark(
    name="tofu",
    results_file=M.RESULTS_FILE,
    summary_file=M.SUMMARY_FILE,
    settings=TofuEvalConfig,
    options=OPTIONS,
    make_settings=lambda values: TofuEvalConfig(**values),
    presets=presets.PRESETS,
    default_preset=presets.default_preset,
    resolve=resolve,
    plan=plan,
    evaluate=evaluate,
    against_itself=against_itself,
    reference_of=reference_of,
    summary=summary,
    note=note,
    encode=encode,
    table=TABLE,
    forget_set=lambda settings: settings.split,
    extra_configs=lambda settings: {TEMPLATE: settings.prompt_template()} if settings.template else {},
    best=(
        f"highest forget quality with model utility >= {100 * M.BEST_POINT_UTILITY:.0f} % of the starting model's",
        best_point,
    ),
    held_out=held_out,
    eval_parts=6,  # four sets scored, the holdout set, then every generation
)
