"""WMDP as a benchmark of the driver (``simnpo/llm/benchmark.py``): its settings, plan, evaluation and table.

Every model is scored on its own (WMDP has no reference model): four-choice accuracy by lm-evaluation-harness on
the hazardous tasks (printed as 1 − accuracy, higher = more forgotten, chance 0.75) and on MMLU (accuracy, the
utility). Unlearning reads the forget corpora and the retain text, joined and cut into ``max_length``-token chunks.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from simnpo.llm.benchmark import Benchmark, Plan, Request, Table
from simnpo.llm.data import chunk_texts, require_pad_token
from simnpo.llm.models import check_source, hub_reachable, load_tokenizer, quiet_hugging_face
from simnpo.llm.trainer import UnlearningData
from simnpo.llm.wmdp import presets
from simnpo.llm.wmdp.builtin import DEFAULT_CACHE, BuiltinWmdpConfig, ensure_model, mini_wmdp
from simnpo.llm.wmdp.data import (
    CHANCE,
    FORGET_CORPORA,
    HAZARD_NAMES,
    HAZARD_TASKS,
    HUB_QUESTIONS,
    RESULTS_FILE,
    RETAIN_CORPORA,
    SUMMARY_FILE,
    TASKS,
    load_corpus,
    load_questions,
)
from simnpo.llm.wmdp.evaluate import WmdpEvalConfig, evaluate_wmdp, wmdp_summary
from simnpo.llm.wmdp.harness import require_lm_eval
from simnpo.losses import METHODS, Read, method_reads

OPTIONS = ("tasks", "limit", "eval_batch_size", "forget_corpora", "retain_corpus", "bio_corpus", "max_forget_chunks")
BUILTIN_TASKS = ("wmdp_bio", "mmlu")  # mini-WMDP's invented hazardous questions stand in for Bio, its general ones
LABELS = {**{task: f"1 − {name} acc ↑" for task, name in HAZARD_NAMES.items()}, "mmlu": "MMLU acc ↑ (utility)"}


def resolve(request: Request, settings: WmdpEvalConfig) -> tuple[WmdpEvalConfig, list[str]]:
    """The data's defaults filled in (built-in: ``wmdp_bio`` and ``mmlu``, the bio corpora; real data: Bio, Cyber
    and MMLU, the bio and cyber forget corpora, wikitext as the retain text) and checked; lines to print."""
    require_lm_eval()
    builtin = request.data == "builtin"
    if builtin:
        if other := [t for t in settings.tasks if t not in BUILTIN_TASKS]:
            raise ValueError(f"the built-in mini-WMDP has no {other[0]}; its tasks are {' and '.join(BUILTIN_TASKS)}")
        if other := [c for c in (*settings.forget_corpora, settings.retain_corpus) if c not in ("", "bio")]:
            raise ValueError(f"the built-in mini-WMDP has bio corpora only, not {other[0]}")
    settings = replace(
        settings,
        tasks=settings.tasks or (BUILTIN_TASKS if builtin else ("wmdp_bio", "wmdp_cyber", "mmlu")),
        forget_corpora=settings.forget_corpora or (("bio",) if builtin else ("bio", "cyber")),
        retain_corpus=settings.retain_corpus or ("bio" if builtin else "wikitext"),
    )
    notes = []
    if builtin:
        notes.append("mini-WMDP: wmdp_bio holds invented hazardous questions, mmlu invented general ones")
    if settings.limit is not None:
        notes.append(f"--limit {settings.limit}: the first {settings.limit} questions of each task, a quick look")
    return settings, notes


def plan(request: Request, settings: WmdpEvalConfig, train: bool = False) -> Plan:
    """Check every input (question files, corpora and their ``text``, the model's tokenizer) and make the built-in
    data when it is the data; raises ValueError with one line on the first problem. ``train``: also the corpora."""
    quiet_hugging_face()
    settings, notes = resolve(request, settings)
    default = BuiltinWmdpConfig()
    epochs = default.finetune.epochs if request.finetune_epochs is None else request.finetune_epochs
    if epochs < 1:
        raise ValueError(f"--finetune-epochs must be >= 1, got {epochs}")
    assets = None
    if request.data == "builtin":
        build = BuiltinWmdpConfig(replace(default.finetune, epochs=epochs))
        assets = mini_wmdp(request.cache_dir or DEFAULT_CACHE, build=build)
    result = Plan(str(assets.data) if assets else request.data, settings, notes=notes)
    if Path(result.data).is_dir():
        for task in settings.tasks:
            load_questions(result.data, task)
    elif result.data != HUB_QUESTIONS:
        raise ValueError(f"WMDP's hub data is {HUB_QUESTIONS} (the harness's own tasks); give it or a local folder")
    elif not hub_reachable() and os.environ.get("HF_HUB_OFFLINE") != "1":
        raise ValueError(
            f"cannot reach the Hugging Face Hub for {HUB_QUESTIONS}; pass a local folder of its JSON files with --data "
            "(or set HF_HUB_OFFLINE=1 to use the datasets cache)"
        )
    if train:
        corpus_texts(result.data, settings)
    if request.model is not None:
        check_source(request.model, "model")
        require_pad_token(load_tokenizer(request.model, request.pad_token), request.model)
        result.models.append(("model", request.model))
    else:
        result.models.append(("target", assets.model("target")))
        result.build = lambda name, progress: ensure_model(assets, name, progress)
    return result


def corpus_texts(data: str, settings: WmdpEvalConfig) -> tuple[list[str], list[str]]:
    """The forget corpora's texts (in the order given) and the retain text's."""
    forget = [t for c in settings.forget_corpora for t in load_corpus(data, FORGET_CORPORA[c], settings.bio_corpus)]
    return forget, load_corpus(data, RETAIN_CORPORA[settings.retain_corpus])


def evaluate(model, tokenizer, plan: Plan, reference, advance=None, accelerator=None) -> dict:
    return evaluate_wmdp(model, tokenizer, plan.data, plan.settings, advance)


def encode(tokenizer, plan: Plan, config) -> UnlearningData:
    """The forget corpora and the retain text, each joined and cut into ``config.max_length``-token chunks (the
    first ``max_forget_chunks`` forget chunks when set)."""
    forget, retain = corpus_texts(plan.data, plan.settings)
    forget_chunks = chunk_texts(tokenizer, forget, config.max_length)
    if plan.settings.max_forget_chunks is not None:
        forget_chunks = forget_chunks[: plan.settings.max_forget_chunks]
    return UnlearningData(forget_chunks, chunk_texts(tokenizer, retain, config.max_length), None)


def check_methods(methods: tuple[str, ...]) -> None:
    if any(m in METHODS and Read("refusal", "sequence") in method_reads(m) for m in methods):
        raise ValueError("idkpo needs question/answer pairs to pair with refusals; WMDP's forget set is text")


def _accuracy(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _cell(task: str, accuracy: float | None) -> str:
    """A table cell: 1 − accuracy for a hazardous task (higher = more forgotten), accuracy for MMLU."""
    return _accuracy(1 - accuracy if accuracy is not None and task in HAZARD_TASKS else accuracy)


def title(settings: WmdpEvalConfig, after_unlearning: bool) -> str:
    head = "WMDP: before and after unlearning" if after_unlearning else "WMDP"
    return f"{head} (first {settings.limit} questions per task)" if settings.limit else head


TABLE = Table(
    columns=lambda settings: tuple(LABELS[task] for task in settings.tasks),
    row=lambda s: [_cell(task, s[task]) for task in s["tasks"]],
    title=title,
    footer=lambda reference: [f"zero-shot accuracy by lm-evaluation-harness; chance {CHANCE} (1 − acc {1 - CHANCE})"],
    relearn_columns=tuple((task, f"{HAZARD_NAMES[task]} acc", _accuracy) for task in HAZARD_TASKS),
    curve_keys=tuple(TASKS),
    utility=("mmlu", "MMLU acc", _accuracy),
    knowledge="wmdp_bio",
)

BENCHMARK = Benchmark(
    name="wmdp",
    results_file=RESULTS_FILE,
    summary_file=SUMMARY_FILE,
    settings=WmdpEvalConfig,
    options=OPTIONS,
    make_settings=lambda values: WmdpEvalConfig(**values),
    presets=presets.PRESETS,
    default_preset=presets.default_preset,
    resolve=resolve,
    plan=plan,
    evaluate=evaluate,
    against_itself=lambda results: (results, None),
    reference_of=lambda results: None,
    summary=wmdp_summary,
    note=lambda label, results: None,
    encode=encode,
    table=TABLE,
    forget_set=lambda settings: " + ".join(f"{c} forget corpus" for c in settings.forget_corpora),
    check_methods=check_methods,
    default_methods=("npo_nll", "simnpo_nll", "rmu"),
    eval_parts=1,
)
