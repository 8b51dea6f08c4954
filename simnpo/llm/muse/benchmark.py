"""MUSE as a benchmark of the driver (``simnpo/llm/benchmark.py``): its settings, plan, evaluation, reference and
table.

PrivLeak's reference AUC is ``retrain_auc`` when given; else, on the built-in mini-MUSE, the built-in retrain model
is evaluated first and its measured AUC is the reference of every later model (its own PrivLeak is 0); else the
benchmark's published retrain AUC of the corpus (docs/conventions.md).
"""

from __future__ import annotations

from dataclasses import replace

from simnpo.llm.benchmark import Benchmark, Plan, Request, Table
from simnpo.llm.data import chunk_texts, require_pad_token
from simnpo.llm.models import check_source, load_tokenizer, quiet_hugging_face
from simnpo.llm.muse import presets
from simnpo.llm.muse.builtin import DEFAULT_CACHE, BuiltinMuseConfig, ensure_model, mini_muse
from simnpo.llm.muse.data import HUB_IDS, load_muse
from simnpo.llm.muse.evaluate import MuseEvalConfig, evaluate_muse, muse_summary
from simnpo.llm.muse.metrics import BEST_POINT_UTILITY, RESULTS_FILE, RETRAIN_AUC, SUMMARY_FILE
from simnpo.llm.trainer import UnlearningData
from simnpo.losses import METHODS, Read, method_reads

OPTIONS = ("corpus", "retrain_auc", "eval_batch_size", "mia", "mia_reference")
EVAL_DATA = (("verbmem", "forget"), ("knowmem", "forget_qa"), ("knowmem", "forget_qa_icl"), ("knowmem", "retain_qa"))
EVAL_DATA += (("knowmem", "retain_qa_icl"), ("privleak", "forget"), ("privleak", "holdout"))
TRAIN_DATA = (("raw", "forget"), ("raw", "retain1"))


def resolve(request: Request, settings: MuseEvalConfig) -> tuple[MuseEvalConfig, list[str]]:
    """The settings as given (nothing to detect), after checking the corpus fits the data."""
    hub_corpus = {hub_id: corpus for corpus, hub_id in HUB_IDS.items()}.get(request.data)
    if hub_corpus and hub_corpus != settings.corpus:
        raise ValueError(f"{request.data} is MUSE-{hub_corpus.capitalize()}; pass --corpus {hub_corpus}")
    if request.data == "builtin" and settings.corpus != "news":
        raise ValueError(
            "the built-in mini-MUSE is news; for books give --model and --data (e.g. muse-bench/MUSE-Books)"
        )
    return settings, []


def plan(request: Request, settings: MuseEvalConfig, train: bool = False) -> Plan:
    """Check every input (data files and fields, the model, its tokenizer) and make the built-in data when it is the
    data; raises ValueError with one line on the first problem. ``train``: also the raw files unlearning reads."""
    quiet_hugging_face()
    settings, notes = resolve(request, settings)
    default = BuiltinMuseConfig()
    epochs = default.finetune.epochs if request.finetune_epochs is None else request.finetune_epochs
    if epochs < 1:
        raise ValueError(f"--finetune-epochs must be >= 1, got {epochs}")
    assets = None
    if request.data == "builtin":
        build = replace(default, finetune=replace(default.finetune, epochs=epochs))
        assets = mini_muse(request.cache_dir or DEFAULT_CACHE, build=build)
    result = Plan(str(assets.data) if assets else request.data, settings, notes=notes)
    sizes = {(subset, split): len(load_muse(result.data, subset, split)) for subset, split in EVAL_DATA}
    for subset, split in TRAIN_DATA if train else ():
        load_muse(result.data, subset, split)
    result.notes.append(set_sizes(sizes))
    if request.model is not None:
        check_source(request.model, "model")
        require_pad_token(load_tokenizer(request.model, request.pad_token), request.model)
        result.models.append(("model", request.model))
    else:
        result.models.append(("target", assets.model("target")))
        result.build = lambda name, progress: ensure_model(assets, name, progress)
    if settings.retrain_auc is not None:
        result.reference = settings.retrain_auc
    elif assets is not None:  # measured on the built-in retrain model, evaluated first
        result.models.insert(0, ("retrain", assets.model("retrain")))
        result.reference_model = "retrain"
    else:
        result.reference = RETRAIN_AUC[settings.corpus]
    return result


def set_sizes(sizes: dict[tuple[str, str], int]) -> str:
    """One line with the items each metric is computed on (MUSE: 100 per set)."""
    n = lambda subset, split: sizes[(subset, split)]  # noqa: E731
    return (
        f"evaluation sets: VerbMem {n('verbmem', 'forget')} prompts, KnowMem {n('knowmem', 'forget_qa')} D_f and "
        f"{n('knowmem', 'retain_qa')} D_r questions ({n('knowmem', 'forget_qa_icl')} and "
        f"{n('knowmem', 'retain_qa_icl')} in-context examples), PrivLeak {n('privleak', 'forget')} forget and "
        f"{n('privleak', 'holdout')} holdout texts"
    )


def evaluate(model, tokenizer, plan: Plan, reference, advance=None, accelerator=None) -> dict:
    return evaluate_muse(model, tokenizer, plan.data, plan.settings, reference, advance, accelerator)


def reference_of(results: dict) -> float:
    """The PrivLeak AUC of the retrain model's results: every later model's reference."""
    return results["privleak"]["auc"]


def against_itself(results: dict) -> tuple[dict, float]:
    results["privleak"].update(agg_value=0.0, retrain_auc=results["privleak"]["auc"])
    return results, reference_of(results)


def encode(tokenizer, plan: Plan, config) -> UnlearningData:
    """The raw forget texts (and retain1 texts for the retain term) joined and cut into chunks of
    ``config.max_length`` tokens, as MUSE's trainer does."""
    forget = [r["text"] for r in load_muse(plan.data, "raw", "forget")]
    retain = [r["text"] for r in load_muse(plan.data, "raw", "retain1")]
    length = config.max_length
    return UnlearningData(chunk_texts(tokenizer, forget, length), chunk_texts(tokenizer, retain, length), None)


METRICS = ("verbmem_f", "knowmem_f", "privleak", "knowmem_r")


def check_methods(methods: tuple[str, ...]) -> None:
    if any(m in METHODS and Read("refusal", "sequence") in method_reads(m) for m in methods):
        raise ValueError("idkpo needs question/answer pairs to pair with refusals; MUSE's forget set is text")


def best_point(history: list[dict], start: dict, reference: dict | None) -> dict | None:
    """The evaluation with the smallest |PrivLeak| among those keeping KnowMem on D_r at 90 % of the retrain
    model's or more (None without a retrain model or when none does)."""
    if reference is None:
        return None
    floor = BEST_POINT_UTILITY * reference["knowmem_r"]
    kept = [h for h in history if h["privleak"] is not None and h["knowmem_r"] >= floor]
    return min(kept, key=lambda h: abs(h["privleak"]), default=None)


def _one_decimal(value) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def title(settings: MuseEvalConfig, after_unlearning: bool) -> str:
    corpus = f"MUSE-{settings.corpus.capitalize()}"
    return f"{corpus}: before and after unlearning" if after_unlearning else corpus


TABLE = Table(
    columns=("VerbMem D_f ↓", "KnowMem D_f ↓", "PrivLeak (→ 0)", "KnowMem D_r ↑ (utility)"),
    row=lambda s: [_one_decimal(s[key]) for key in METRICS],
    title=title,
    footer=lambda auc: [] if auc is None else [f"PrivLeak relative to the retrain AUC {auc:.4f}"],
    relearn_columns=tuple(
        (key, name, _one_decimal) for key, name in zip(METRICS[:3], ("VerbMem", "KnowMem", "PrivLeak"))
    ),
    curve_keys=METRICS,
    utility=("knowmem_r", "KnowMem D_r", _one_decimal),
    knowledge="knowmem_f",
)

BENCHMARK = Benchmark(
    name="muse",
    results_file=RESULTS_FILE,
    summary_file=SUMMARY_FILE,
    settings=MuseEvalConfig,
    options=OPTIONS,
    make_settings=lambda values: MuseEvalConfig(**values),
    presets=presets.PRESETS,
    default_preset=presets.default_preset,
    resolve=resolve,
    plan=plan,
    evaluate=evaluate,
    against_itself=against_itself,
    reference_of=reference_of,
    summary=muse_summary,
    note=lambda label, results: None,
    encode=encode,
    table=TABLE,
    forget_set=lambda settings: f"MUSE-{settings.corpus.capitalize()} D_f",
    check_methods=check_methods,
    best=(
        f"smallest |PrivLeak| with KnowMem on D_r >= {100 * BEST_POINT_UTILITY:.0f} % of the retrain model's",
        best_point,
    ),
)
