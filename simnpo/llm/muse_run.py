"""``simnpo eval --bench muse`` and ``simnpo llm --bench muse``: check every input first, build what is missing,
evaluate each model; for ``llm``, then unlearn with each method (``unlearn_runs``) and evaluate each.

PrivLeak's reference AUC is ``retrain_auc`` when given; else, on the built-in mini-MUSE, the built-in retrain model
is evaluated first and its measured AUC is the reference of every later model (its own PrivLeak is 0); else the
benchmark's published retrain AUC of the corpus (docs/conventions.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from simnpo.llm.builtin_muse import DEFAULT_CACHE, BuiltinMuseConfig, MiniMuse, ensure_model, mini_muse
from simnpo.llm.finetune import progress_callbacks
from simnpo.llm.models import check_source, load_model, load_tokenizer, quiet_hugging_face
from simnpo.llm.muse_data import HUB_IDS, chunk_texts, load_muse
from simnpo.llm.muse_eval import MuseEvalConfig, evaluate_muse, muse_summary
from simnpo.llm.muse_metrics import RETRAIN_AUC
from simnpo.llm.tofu_data import require_pad_token
from simnpo.llm.trainer import UnlearningData
from simnpo.llm.unlearn_runs import LLMRunConfig, unlearn_each
from simnpo.runs import read_json, write_json

EVAL_FILES = (("verbmem", "forget"), ("knowmem", "forget_qa"), ("knowmem", "forget_qa_icl"), ("knowmem", "retain_qa"))
EVAL_FILES += (("knowmem", "retain_qa_icl"), ("privleak", "forget"), ("privleak", "holdout"))
TRAIN_FILES = (("raw", "forget"), ("raw", "retain1"))


@dataclass(frozen=True)
class MuseRequest:
    """What to evaluate: a model (None = the built-in ones), its data, and the PrivLeak reference."""

    model: str | None = None
    data: str = "builtin"
    retrain_auc: float | None = None
    pad_token: str | None = None
    device: str = "cpu"
    finetune_epochs: int = BuiltinMuseConfig().finetune.epochs
    cache_dir: Path = DEFAULT_CACHE


@dataclass
class MusePlan:
    data: str
    models: list[tuple[str, str | Path]] = field(default_factory=list)  # (label, folder or hub id), in order
    retrain_auc: float | None = None
    assets: MiniMuse | None = None


def plan_muse_eval(request: MuseRequest, config: MuseEvalConfig, train: bool = False) -> MusePlan:
    """Check every input (data files and fields, the model, its tokenizer) before anything is written; raises
    ValueError with one line on the first problem. ``train``: also the raw files unlearning reads."""
    quiet_hugging_face()
    if request.finetune_epochs < 1:
        raise ValueError(f"--finetune-epochs must be >= 1, got {request.finetune_epochs}")
    if request.retrain_auc is not None and not 0 < request.retrain_auc <= 1:
        raise ValueError(f"--retrain-auc must be in (0, 1], got {request.retrain_auc}")
    builtin = request.data == "builtin"
    hub_corpus = {hub_id: corpus for corpus, hub_id in HUB_IDS.items()}.get(request.data)
    if hub_corpus and hub_corpus != config.corpus:
        raise ValueError(f"{request.data} is MUSE-{hub_corpus.capitalize()}; pass --corpus {hub_corpus}")
    if builtin and config.corpus != "news":
        raise ValueError(
            "the built-in mini-MUSE is news; for books give --model and --data (e.g. muse-bench/MUSE-Books)"
        )
    assets = None
    if builtin:
        default = BuiltinMuseConfig()
        build = replace(default, finetune=replace(default.finetune, epochs=request.finetune_epochs))
        assets = mini_muse(request.cache_dir, build=build)
    plan = MusePlan(data=str(assets.data) if builtin else request.data, assets=assets)
    for subset, split in EVAL_FILES + (TRAIN_FILES if train else ()):
        load_muse(plan.data, subset, split)
    if request.model is not None:
        check_source(request.model, "model")
        require_pad_token(load_tokenizer(request.model, request.pad_token), request.model)
        plan.models.append(("model", request.model))
    else:
        plan.models.append(("target", assets.model("target")))
    if request.retrain_auc is not None:
        plan.retrain_auc = request.retrain_auc
    elif builtin:  # measured on the built-in retrain model, evaluated first
        plan.models.insert(0, ("retrain", assets.model("retrain")))
    else:
        plan.retrain_auc = RETRAIN_AUC[config.corpus]
    return plan


def run_muse_eval(
    request: MuseRequest,
    config: MuseEvalConfig,
    plan: MusePlan,
    folder: Path,
    progress,
    accelerator=None,
    reuse: bool = False,
) -> tuple[list[list[str]], float | None]:
    """Evaluate the planned models in order; write ``LABEL/MUSE_EVAL.json`` and ``LABEL/MUSE_SUMMARY.json`` for
    each and ``summary.json`` for all. Returns the table rows and the retrain AUC every model was compared with.
    ``reuse`` keeps evaluations already written (a resumed run of the same configuration)."""
    main = accelerator is None or accelerator.is_main_process
    summaries, rows, retrain_auc = {}, [], plan.retrain_auc
    for label, source in plan.models:
        done = folder / label / "MUSE_SUMMARY.json"
        if reuse and done.is_file():
            summaries[label] = read_json(done)
        else:
            if label in ("retrain", "target") and main:  # the built-in models, made on first use
                ensure_model(plan.assets, label, *progress_callbacks(progress, f"fine-tune built-in {label}"))
            if accelerator is not None:
                accelerator.wait_for_everyone()
            tokenizer = load_tokenizer(source, request.pad_token)
            model = load_model(source, request.device if accelerator is None else accelerator.device)
            advance = progress(f"evaluate {label}", 4)
            results = evaluate_muse(
                model, tokenizer, plan.data, config, retrain_auc, lambda _, a=advance: a(1), accelerator
            )
            if retrain_auc is None:  # the built-in retrain model (planned first): the reference of every later model
                results["privleak"].update(agg_value=0.0, retrain_auc=results["privleak"]["auc"])
            summaries[label] = {**muse_summary(results), "source": str(source)}
            if main:
                write_json(folder / label / "MUSE_EVAL.json", results)
                write_json(done, summaries[label])
        if label == "retrain" and retrain_auc is None:
            retrain_auc = summaries[label]["privleak_auc"]
        rows.append(muse_row(label, summaries[label]))
    if main:
        write_json(folder / "summary.json", summaries)
    return rows, retrain_auc


def muse_row(label: str, s: dict) -> list[str]:
    show = lambda v: "n/a" if v is None else f"{v:.1f}"  # noqa: E731
    return [label] + [show(s[key]) for key in ("verbmem_f", "knowmem_f", "privleak", "knowmem_r")]


def run_llm_muse(
    request: MuseRequest,
    run: LLMRunConfig,
    config: MuseEvalConfig,
    plan: MusePlan,
    folder: Path,
    accelerator,
    progress,
) -> tuple[list[list[str]], float | None]:
    """Evaluate the starting points, then unlearn the forget texts (retain1 texts for the retain term) with each
    method and evaluate each; returns the table rows and the retrain AUC of PrivLeak."""
    rows, retrain_auc = run_muse_eval(request, config, plan, folder, progress, accelerator, reuse=True)
    forget = [r["text"] for r in load_muse(plan.data, "raw", "forget")]
    retain = [r["text"] for r in load_muse(plan.data, "raw", "retain1")]

    def encode(tokenizer, trainer_config) -> UnlearningData:
        length = trainer_config.max_length
        return UnlearningData(chunk_texts(tokenizer, forget, length), chunk_texts(tokenizer, retain, length), None)

    def evaluate(model, tokenizer):
        results = evaluate_muse(model, tokenizer, plan.data, config, retrain_auc, accelerator=accelerator)
        return results, muse_summary(results)

    start = plan.models[-1][1]  # the target (built-in) or the given model
    finals = unlearn_each(
        run, start, request.pad_token, folder, accelerator, progress, encode, evaluate, "MUSE_EVAL.json"
    )
    return rows + [muse_row(method, final) for method, final in zip(run.methods, finals)], retrain_auc
