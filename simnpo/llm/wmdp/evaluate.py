"""The WMDP evaluation: zero-shot four-choice accuracy on each task by lm-evaluation-harness (``harness``), on the
harness's own tasks for hub data and on local tasks in its template for a local folder or the built-in mini-WMDP.

Results (``WMDP_EVAL.json``): per task ``acc``, ``acc_stderr``, ``n``, per question ``correct`` and the four
choices' ``loglikelihoods``; the summary holds each task's accuracy (None for a task not evaluated).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from simnpo.llm.wmdp.data import FORGET_CORPORA, RETAIN_CORPORA, TASKS
from simnpo.llm.wmdp.harness import harness_accuracy, local_task


def _names(value) -> tuple[str, ...]:
    """A comma-separated option or a saved list, as a tuple of names."""
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    return tuple(value)


@dataclass(frozen=True)
class WmdpEvalConfig:
    """What to score and, for unlearning, which corpora to read. Empty ``tasks`` / ``forget_corpora`` and an empty
    ``retain_corpus`` mean the data's defaults (``benchmark.resolve``). ``limit``: the first N questions of each
    task (a quick look, never the benchmark's number). ``bio_corpus``: the gated bio forget corpus's local file.
    ``max_forget_chunks``: unlearn on the first N chunks of the forget corpora (the published runs stop after a
    fixed number of batches)."""

    tasks: tuple[str, ...] = ()
    limit: int | None = None
    batch_size: int = 16
    forget_corpora: tuple[str, ...] = ()
    retain_corpus: str = ""
    bio_corpus: str | None = None
    max_forget_chunks: int | None = None

    def __post_init__(self) -> None:
        for name in ("tasks", "forget_corpora"):  # from the command line (text) or config.json (a list)
            object.__setattr__(self, name, _names(getattr(self, name)))
        for task in self.tasks:
            if task not in TASKS:
                raise ValueError(f"unknown WMDP task {task!r}; use {', '.join(TASKS)}")
        for corpus in self.forget_corpora:
            if corpus not in FORGET_CORPORA:
                raise ValueError(f"unknown forget corpus {corpus!r}; use {' or '.join(FORGET_CORPORA)}")
        if self.retain_corpus and self.retain_corpus not in RETAIN_CORPORA:
            raise ValueError(f"unknown retain corpus {self.retain_corpus!r}; use {', '.join(RETAIN_CORPORA)}")
        for name in ("limit", "batch_size", "max_forget_chunks"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")


def evaluate_wmdp(
    model, tokenizer, data: str, config: WmdpEvalConfig, advance: Callable[[int], None] | None = None
) -> dict:
    """Every task of ``config`` on ``model``: the harness's own tasks for hub data, local tasks for a folder. Every
    process scores every question (the harness shares questions out only under its own launcher)."""
    import lm_eval
    from datasets.exceptions import DatasetsError

    if advance:
        advance(1)
    local = Path(data).is_dir()
    with tempfile.TemporaryDirectory() as folder:
        names = {
            task: local_task(Path(folder), f"local_{task}", Path(data) / f"{TASKS[task][0]}.json", TASKS[task][1])
            if local
            else task
            for task in config.tasks
        }
        try:
            scores = harness_accuracy(
                model, tokenizer, list(names.values()), Path(folder) if local else None, config.limit, config.batch_size
            )
        except (OSError, DatasetsError) as err:  # the harness's own tasks read the hub (or the datasets cache)
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ValueError(f"lm-evaluation-harness could not load its WMDP or MMLU data ({reason})") from None
    results: dict = {task: scores[name] for task, name in names.items()}
    results["_meta"] = {"tasks": list(config.tasks), "limit": config.limit, "lm_eval": lm_eval.__version__}
    return results


def wmdp_summary(results: dict) -> dict:
    """Each task's accuracy (None when not evaluated), the tasks in order, and the question limit."""
    meta = results["_meta"]
    return {**{task: results[task]["acc"] if task in results else None for task in TASKS}, **meta}
