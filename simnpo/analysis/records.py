"""Records read from a run folder, the same way for every benchmark: the starting models' summaries and each
method's evaluations from its ``history.json``, tagged with the run and the model."""

from __future__ import annotations

from pathlib import Path

from simnpo.runs import HISTORY_FILE, evaluation_file, read_json


def run_records(
    folder: Path, summary_file: str, key: str, results_file: str | None = None
) -> tuple[list[dict], list[dict]]:
    """``models``: every evaluated model's ``summary_file`` and each method's last evaluation; ``history``: every
    evaluation point of each method. A history counts when its entries hold ``key`` (another benchmark's do not).
    With ``results_file``, each model record names its full results (``eval_path``)."""
    folder = Path(folder)
    tag = lambda path: {"run": folder.name, "model": path.parent.name}  # noqa: E731
    models = [
        {**tag(path), **read_json(path), **({"eval_path": str(path.with_name(results_file))} if results_file else {})}
        for path in sorted(folder.glob(f"*/{summary_file}"))
    ]
    history = []
    for path in sorted(folder.glob(f"*/{HISTORY_FILE}")):
        entries = read_json(path)
        if entries and key in entries[-1]:
            last = entries[-1]
            if results_file:  # the evaluation after the last epoch
                last = {**last, "eval_path": str(evaluation_file(path.parent, last["epoch"], results_file))}
            models.append({**tag(path), **last})
            history += [{**tag(path), **entry} for entry in entries]
    return models, history
