"""``simnpo relearn``: the relearning attack on the unlearned models of a ``simnpo llm`` run, or on one given model,
for any benchmark."""

from __future__ import annotations

from pathlib import Path

import typer

from simnpo.cli.common import app, parse_list, print_table, progress_bar, user_errors
from simnpo.cli.llm import MODEL_HELP, bench_options, benchmark, make_request, source_lines
from simnpo.cli.options import (
    BENCH,
    CACHE_DIR,
    CONFIG,
    DATA,
    DEVICE,
    GGUF_FILE,
    MAX_NEW_TOKENS,
    RETAIN_RESULTS,
    SPLIT,
    given_options,
)

# the relearning options, shared with `simnpo attack all`
FRACTION = typer.Option(0.5, help="Fraction of the forget set to relearn on.")
SAMPLES = typer.Option(None, help="Or this many forget rows (the authors' WMDP relearning: 400).")
WARMUP_STEPS = typer.Option(0, help="Linear warm-up steps, then a constant lr.")
STEPS = typer.Option(50, help="Relearning steps.")
LR = typer.Option(1e-4, help="Learning rate (AdamW, constant after --warmup-steps).")
BATCH_SIZE = typer.Option(4, help="Batch size.")
EVAL_AT = typer.Option("0,5,10,25,50", help="Steps at which to evaluate, comma-separated.")
SEED = typer.Option(0, help="Seed of the relearned subset and batch order.")


@app.command()
def relearn(
    ctx: typer.Context,
    run: Path | None = typer.Argument(None, help="A `simnpo llm` run folder: relearn each of its unlearned models."),
    model: str | None = typer.Option(None, help="Or one unlearned model (with --data): " + MODEL_HELP + "."),
    gguf_file: str | None = GGUF_FILE,
    bench: str = BENCH,
    data: str = DATA,
    split: str | None = SPLIT,
    retain_results: Path | None = RETAIN_RESULTS,
    fraction: float = FRACTION,
    samples: int | None = SAMPLES,
    warmup_steps: int = WARMUP_STEPS,
    steps: int = STEPS,
    lr: float = LR,
    batch_size: int = BATCH_SIZE,
    eval_at: str = EVAL_AT,
    max_new_tokens: int = MAX_NEW_TOKENS,
    seed: int = SEED,
    device: str = DEVICE,
    cache_dir: Path | None = CACHE_DIR,
    out: Path | None = typer.Option(None, help="Output folder (default: RUN/relearn or runs/relearn-<time>)."),
    config_file: Path | None = CONFIG,
) -> None:
    """Relearning attack: fine-tune unlearned models on part of the forget set and report how the forget metrics
    recover over the steps."""
    from simnpo.llm.runtime import resolve_device
    from simnpo.runs import lock_run_folder, run_dir

    with user_errors():
        if (run is None) == (model is None):
            raise ValueError("give either a `simnpo llm` run folder or --model")
        if gguf_file is not None and model is None:
            raise ValueError("--gguf-file needs --model: the folder (or hub repository) that holds the file")
        config = relearn_config(fraction, steps, lr, batch_size, eval_at, seed, samples, warmup_steps)
        chosen, targets, settings = relearn_targets(ctx, run, model, bench, data, cache_dir)
        device = resolve_device(device)
        folder = run_dir(out if out or run is None else run / "relearn", "relearn")
        if run is not None:
            lock_run_folder(Path(run))  # no `simnpo llm` may resume in it meanwhile
    with user_errors():  # e.g. more --samples than forget rows
        header, rows = relearn_each(
            chosen, targets, config, settings, folder, device, command="relearn", options=given_options(ctx)
        )
    part = f"{samples} rows" if samples is not None else f"{fraction:.0%}"
    title = (
        f"Relearning on {part} of {chosen.forget_set(settings)}, {steps} steps (after closer to before = more robust)"
    )
    print_table(header, rows, title)
    typer.echo(f"wrote {folder}")


def relearn_targets(ctx: typer.Context, run: Path | None, model: str | None, bench: str, data: str, cache_dir):
    """The benchmark, what to relearn and the evaluation settings: every unlearned model of a run folder with
    that run's settings (this command's generation length), or one given model."""
    from simnpo.llm import relearn as R
    from simnpo.runs import CONFIG_FILE, read_config

    if run is not None:
        if not (Path(run) / CONFIG_FILE).is_file():
            raise ValueError(f"{run} is not a `simnpo llm` run folder (no config.json)")
        chosen = benchmark(read_config(run).get("bench") or "tofu")
        overrides = {"max_new_tokens": ctx.params["max_new_tokens"]} if "max_new_tokens" in chosen.options else {}
        targets, settings = R.plan_from_run(chosen, Path(run), overrides)
        return chosen, targets, settings
    chosen = benchmark(bench)
    options = {"max_new_tokens": ctx.params["max_new_tokens"]} if "max_new_tokens" in chosen.options else {}
    options |= {k: v for k, v in bench_options(ctx, chosen).items() if k in ("split", "retain_results")}
    request = make_request(chosen, model, data, None, "cpu", None, cache_dir, gguf_file=ctx.params["gguf_file"])
    for line in source_lines(request):
        typer.echo(line)
    targets = R.plan_for_model(chosen, request, chosen.make_settings(options))
    return chosen, targets, targets.plan.settings


def relearn_config(fraction, steps, lr, batch_size, eval_at: str, seed, samples, warmup_steps):
    """The relearning settings from the options `relearn` and `attack all` share."""
    from simnpo.llm.relearn import RelearnConfig

    at = parse_list(eval_at, int, "--eval-at")
    return RelearnConfig(fraction, steps, lr, batch_size, at, seed, samples, warmup_steps)


def relearn_each(
    bench, targets, config, settings, folder: Path, device: str, **extra
) -> tuple[list[str], list[list[str]]]:
    """Save the relearning's config.json in ``folder`` (its settings, the evaluation ``settings`` and ``extra``: the
    command and its options), relearn every target; the table's header and one row per target: the relearning
    columns before and after (a column no model has a value for, e.g. a WMDP task not scored, left out)."""
    from simnpo.llm.relearn import relearn as relearn_model
    from simnpo.runs import EVALUATION, RELEARN, save_config

    save_config(folder, {RELEARN: config, EVALUATION: settings}, seed=config.seed, bench=bench.name, **extra)

    with progress_bar() as progress:
        curves = {
            target[0]: relearn_model(
                bench, target, targets.plan, targets.reference, config, folder / target[0], device, progress
            )
            for target in targets.targets
        }
    columns = [c for c in bench.table.relearn_columns if any(v[c[0]][0] is not None for v in curves.values())]
    header = ["model"] + [h for _, label, _ in columns for h in (f"{label} before", "after")]
    rows = [[name, *(fmt(v[key][i]) for key, _, fmt in columns for i in (0, -1))] for name, v in curves.items()]
    if bench.held_out is not None:  # the first column again, on the forget items not relearned
        key, label, fmt = columns[0]
        header += [f"{label}, items not relearned, before", "after"]
        for row, v in zip(rows, curves.values()):
            row += [fmt(v["held_out"][key][i]) for i in (0, -1)]
    return header, rows
