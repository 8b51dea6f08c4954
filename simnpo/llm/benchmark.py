"""The benchmark interface: what a benchmark supplies so that one driver (``driver.py``) can evaluate models,
unlearn with every method and relearn on it. ``benchmarks.BENCHMARKS`` maps names to implementations; each lives in
its own folder (``tofu/``, ``muse/``, ``wmdp/``), and docs/architecture.md says how to add one.

Vocabulary: a **request** is what the user asked for whatever the benchmark (a model, data, where to cache); the
benchmark's **settings** are its own options as a frozen dataclass (TOFU: split, template, …); a **plan** is what
``Benchmark.plan`` checked and resolved before anything is written; the **reference** is what every model is
compared with (TOFU: the retain model's forget truth ratios; MUSE: the retrain model's PrivLeak AUC).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simnpo.losses import METHODS


@dataclass(frozen=True)
class Request:
    """What to evaluate or unlearn, whatever the benchmark: a model (None: the built-in ones), its data (``builtin``,
    a local folder or a hub id), and how to load and cache (``torch_dtype``: the weights' dtype, ``models.DTYPES``).
    A GGUF checkpoint's ``model`` is the folder converted from it (``gguf.converted_folder``), ``converted_from`` the
    file."""

    model: str | None = None
    data: str = "builtin"
    pad_token: str | None = None
    device: str = "cpu"
    torch_dtype: str = "float32"
    finetune_epochs: int | None = None  # the built-in fine-tuning's epochs (None: the benchmark's own)
    cache_dir: Path | None = None  # the built-in data and models (None: runs/.cache/BENCH)
    converted_from: str | None = None  # the GGUF file ``model`` was converted from


@dataclass
class Plan:
    """Everything checked and resolved before anything is written."""

    data: str  # the data folder or hub id evaluations read
    settings: Any  # the benchmark's settings, resolved (e.g. TOFU's prompt template)
    models: list[tuple[str, str | Path]] = field(default_factory=list)  # (label, folder or hub id), in order
    reference: Any = None  # what every model is compared with, when known before evaluating any
    reference_model: str | None = None  # the planned model whose results give the reference (a built-in one)
    build: Callable[[str, Callable], Path] | None = None  # (name, progress) -> a built-in model, made on first use
    notes: list[str] = field(default_factory=list)  # printed before the run (e.g. which prompt template and why)


@dataclass(frozen=True)
class Table:
    """How a benchmark's summaries are printed."""

    columns: tuple[str, ...] | Callable[[Any], tuple[str, ...]]  # after the model label (or: settings -> them)
    row: Callable[[dict], list[str]]  # a summary -> its cells
    title: Callable[[Any, bool], str]  # (settings, after unlearning) -> the title
    footer: Callable[[Any], list[str]] = lambda reference: []  # lines under the table
    # (summary key, label, format) shown before and after relearning, and the curve keys relearning records
    relearn_columns: tuple[tuple[str, str, Callable[[Any], str]], ...] = ()
    curve_keys: tuple[str, ...] = ()
    # what the attacks report beside the forget columns: the utility (summary key, label, format), and the forget
    # metric whose return toward the target's value measures recovered knowledge (``attacks.recovered``)
    utility: tuple[str, str, Callable[[Any], str]] | None = None
    knowledge: str | None = None

    def header(self, settings) -> tuple[str, ...]:
        """The column names after the model label, for the run's settings (WMDP's depend on the tasks scored)."""
        return self.columns(settings) if callable(self.columns) else self.columns


@dataclass(frozen=True)
class Benchmark:
    """A benchmark, as functions of plain data. ``evaluate`` calls ``advance(1)`` ``eval_parts`` times."""

    name: str
    results_file: str  # one model's full results in the benchmark's own layout (e.g. TOFU_EVAL.json)
    summary_file: str  # its headline numbers (e.g. TOFU_SUMMARY.json)
    settings: type  # its settings dataclass; ``make_settings`` builds one from option values
    options: tuple[str, ...]  # the command-line options (by name) that belong to it
    make_settings: Callable[[dict], Any]
    presets: dict[str, dict]
    default_preset: Callable[[str, dict], str]  # (data, given option values) -> preset name
    resolve: Callable[[Request, Any], tuple[Any, list[str]]]  # settings resolved without writing, and notes
    plan: Callable[[Request, Any, bool], Plan]  # (request, settings, for unlearning) -> plan; ValueError if bad
    evaluate: Callable[..., dict]  # (model, tokenizer, plan, reference, advance, accelerator) -> results
    against_itself: Callable[[dict], tuple[dict, Any]]  # reference model's results -> (scored against itself, ref)
    reference_of: Callable[[dict], Any]  # results of the reference model, already written -> the reference
    summary: Callable[[dict], dict]  # results -> the headline numbers
    note: Callable[[str, dict], str | None]  # (label, results) -> a line to print under the table, if any
    encode: Callable[[Any, Plan, Any], Any]  # (tokenizer, plan, TrainerConfig) -> UnlearningData
    table: Table
    forget_set: Callable[[Any], str]  # settings -> the forget set's name (e.g. "forget10")
    check_methods: Callable[[tuple[str, ...]], None] = lambda methods: None  # ValueError for one it cannot run
    extra_configs: Callable[[Any], dict] = lambda settings: {}  # more of its settings to save in config.json
    default_methods: tuple[str, ...] = ("npo_nll", "simnpo_nll")  # what `simnpo llm` runs without --methods
    # the rule picking a method's best evaluation point: (its statement, (history, starting model's summary,
    # reference model's summary or None) -> the best history entry, None when no entry meets it); with a rule,
    # built-in runs evaluate every epoch by default (trade-off curves)
    best: tuple[str, Callable[[list[dict], dict, dict | None], dict | None]] | None = None
    # (results, forget rows a relearning attack trained on, plan, reference) -> the forget metrics of the items it
    # did not train on, for benchmarks whose forget rows are their evaluation items (TOFU)
    held_out: Callable[[dict, list[int], Plan, Any], dict] | None = None
    eval_parts: int = 4

    def runnable_methods(self) -> tuple[str, ...]:
        """Every method of the loss library this benchmark can run (``--methods all``), in the library's order."""
        runnable = []
        for method in METHODS:
            try:
                self.check_methods((method,))
            except ValueError:  # e.g. IdkPO on a benchmark of texts without question/answer pairs
                continue
            runnable.append(method)
        return tuple(runnable)
