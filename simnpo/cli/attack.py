"""``simnpo attack``: attacks that bring forgotten knowledge back, on the unlearned models of a ``simnpo llm`` run:
``quantize`` (8- and 4-bit weights), ``relearn`` (``simnpo relearn``) and ``all`` (both, one robustness report)."""

from __future__ import annotations

from pathlib import Path

import typer

from simnpo.cli.common import app, parse_list, print_table, progress_bar, user_errors
from simnpo.cli.llm import benchmark
from simnpo.cli.options import CONFIG, DEVICE, given_options
from simnpo.cli.relearn import (
    BATCH_SIZE,
    EVAL_AT,
    FRACTION,
    LR,
    SAMPLES,
    SEED,
    STEPS,
    WARMUP_STEPS,
    relearn,
    relearn_config,
    relearn_each,
)

attack_app = typer.Typer(
    help="Attacks that bring forgotten knowledge back: relearning, quantization, or both in one report.",
    no_args_is_help=True,
)
app.add_typer(attack_app, name="attack")
attack_app.command(name="relearn", help="Relearning attack (the same as `simnpo relearn`).")(relearn)

RUN = typer.Argument(..., help="A `simnpo llm` run folder: attack its target and each of its unlearned models.")
BITS = typer.Option("8,4", help="Weight bit widths, comma-separated (bitsandbytes: 8 = LLM.int8, 4 = --four-bit-type).")
FOUR_BIT_TYPE = typer.Option("fp4", help="The 4-bit data type: fp4 (the paper's default) or nf4.")
COMPUTE_DTYPE = typer.Option(
    "float32", help="dtype the quantized models compute in: float32, bfloat16 or float16 (the paper's: bfloat16)."
)
INT8_THRESHOLD = typer.Option(6.0, help="LLM.int8's outlier threshold (0: every product in int8).")


@attack_app.command()
def quantize(
    ctx: typer.Context,
    run: Path = RUN,
    bits: str = BITS,
    four_bit_type: str = FOUR_BIT_TYPE,
    int8_threshold: float = INT8_THRESHOLD,
    compute_dtype: str = COMPUTE_DTYPE,
    device: str = DEVICE,
    out: Path | None = typer.Option(None, help="Output folder (default: RUN/quantize)."),
    config_file: Path | None = CONFIG,
) -> None:
    """Quantization attack: evaluate the target and every unlearned model of a run after 8- and 4-bit weight
    quantization (bitsandbytes) and report the forget metrics and utility before and after."""
    from simnpo.analysis.attacks import QUANTIZE_FILE, judged, plot_attacks
    from simnpo.analysis.style import save_figure
    from simnpo.runs import QUANTIZE, resume_or_save_config, run_dir, write_json

    with user_errors():
        setup = _quantize_setup(run, bits, four_bit_type, int8_threshold, compute_dtype, device)
        chosen, config, device, planned, _ = setup
        folder = run_dir(out or run / "quantize", "quantize")
        # the same settings resume (evaluations already written are read back), others are refused
        extra = {"command": "attack quantize", "bench": chosen.name, "run": str(run), "options": given_options(ctx)}
        resume_or_save_config(folder, {QUANTIZE: config}, **extra)
    report = judged(_quantize(chosen, run, planned, config, folder, device))
    write_json(folder / QUANTIZE_FILE, report)
    print_report(chosen, report, "quantization attack")
    save_figure(plot_attacks(report), folder, "quantize")
    typer.echo(f"wrote {folder}")


@attack_app.command(name="all")
def attack_all(
    ctx: typer.Context,
    run: Path = RUN,
    fraction: float = FRACTION,
    samples: int | None = SAMPLES,
    warmup_steps: int = WARMUP_STEPS,
    steps: int = STEPS,
    lr: float = LR,
    batch_size: int = BATCH_SIZE,
    eval_at: str = EVAL_AT,
    seed: int = SEED,
    bits: str = BITS,
    four_bit_type: str = FOUR_BIT_TYPE,
    int8_threshold: float = INT8_THRESHOLD,
    compute_dtype: str = COMPUTE_DTYPE,
    device: str = DEVICE,
    config_file: Path | None = CONFIG,
) -> None:
    """Robustness report: relearn (RUN/relearn) and quantize (RUN/quantize) every unlearned model of a run, then one
    table per method (its forget metrics and utility as unlearned and after each attack, and the share of the
    forgotten knowledge each attack brings back) and one figure (RUN/robustness.png)."""
    from simnpo.analysis.attacks import ROBUSTNESS_FILE, plot_attacks, robustness_report
    from simnpo.analysis.style import save_figure
    from simnpo.runs import (
        QUANTIZE,
        RELEARN_FILE,
        read_json,
        resume_or_save_config,
        run_dir,
        write_json,
    )

    with user_errors():
        setup = _quantize_setup(run, bits, four_bit_type, int8_threshold, compute_dtype, device)
        chosen, config, device, targets, settings = setup
        relearn_settings = relearn_config(fraction, steps, lr, batch_size, eval_at, seed, samples, warmup_steps)
        relearn_folder, quantize_folder = run_dir(run / "relearn", "relearn"), run_dir(run / "quantize", "quantize")
        extra = {"command": "attack all", "run": str(run), "options": given_options(ctx)}
        try:
            resume_or_save_config(quantize_folder, {QUANTIZE: config}, bench=chosen.name, **extra)
        except ValueError:
            raise ValueError(
                f"{quantize_folder} holds a quantization attack with other settings; delete it, or run "
                "`simnpo attack quantize --out` into another folder"
            ) from None
    with user_errors():  # e.g. more --samples than forget rows
        relearn_each(chosen, targets, relearn_settings, settings, relearn_folder, device, **extra)
    quantized = _quantize(chosen, run, targets, config, quantize_folder, device)
    curves = {name: read_json(relearn_folder / name / RELEARN_FILE) for name, _, _ in targets.targets}
    report = robustness_report(quantized, curves) | {"relearn": {"steps": steps, "items": _items(curves)}}
    write_json(run / ROBUSTNESS_FILE, report)
    print_report(chosen, report, "robustness")
    save_figure(plot_attacks(report), run, "robustness")
    typer.echo(f"wrote {run / ROBUSTNESS_FILE}")


def _quantize_setup(run: Path, bits: str, four_bit_type: str, int8_threshold: float, compute_dtype: str, device: str):
    """The run's benchmark, the quantization settings, the device, the run's plan (its unlearned models) and its
    evaluation settings, checked before anything is written."""
    from simnpo.llm.quantize import QuantizeConfig, check_run, require_bitsandbytes
    from simnpo.llm.runtime import resolve_device
    from simnpo.runs import CONFIG_FILE, lock_run_folder, read_config

    if not (Path(run) / CONFIG_FILE).is_file():
        raise ValueError(f"{run} is not a `simnpo llm` run folder (no config.json)")
    chosen = benchmark(read_config(run).get("bench") or "tofu")
    config = QuantizeConfig(parse_list(bits, int, "--bits"), four_bit_type, int8_threshold, compute_dtype)
    require_bitsandbytes()
    device = resolve_device(device)
    # e.g. a folder without finished unlearned models: one line, nothing written
    planned, settings = check_run(chosen, Path(run), config)
    lock_run_folder(Path(run))  # no `simnpo llm` may resume in it meanwhile
    return chosen, config, device, planned, settings


def _quantize(chosen, run: Path, planned, config, folder: Path, device: str) -> dict:
    from simnpo.llm.quantize import quantize_run

    with progress_bar() as progress:
        return quantize_run(chosen, Path(run), planned, config, folder, device, progress)


def _items(curves: dict) -> int | None:
    return next((c["relearn_items"] for c in curves.values()), None)


def print_report(bench, report: dict, what: str) -> None:
    """One table per model, then the model that holds best and by how much."""
    for model in report["models"]:
        print_table(*attack_rows(bench, report, model), f"{model}: {what} on {bench.name.upper()}")
    best = report["holds_best"]
    if best is not None:
        worst = max(v for v in report["recovered"][best].values() if v is not None)
        typer.echo(
            f"holds best: {best} (its strongest attack brings back {round(worst)} % of the {knowledge_label(report)} "
            "that unlearning removed)"
        )


def attack_rows(bench, report: dict, model: str) -> tuple[list[str], list[list[str]]]:
    """One model's table: a row per condition (full precision, then each attack), its forget columns, utility and,
    for an unlearned model, the share of the forgotten knowledge the attack brings back."""
    from simnpo.analysis.attacks import condition_label
    from simnpo.llm.quantize import CHANGED

    columns = [*bench.table.relearn_columns, *([bench.table.utility] if bench.table.utility else [])]
    by_condition = report["models"][model]
    shown = [c for c in columns if any(by_condition.get(k, {}).get(c[0]) is not None for k in report["conditions"])]
    recovered = report.get("recovered", {}).get(model)
    header = ["condition", *(label for _, label, _ in shown)]
    changed = any(CHANGED in summary for summary in by_condition.values())
    header += ["weights changed"] if changed else []
    header += [f"{knowledge_label(report)} recovered"] if recovered is not None else []
    rows = []
    for condition in report["conditions"]:
        summary = by_condition.get(condition)
        if summary is None:
            continue
        row = [condition_label(condition), *(_cell(fmt, summary.get(key)) for key, _, fmt in shown)]
        if changed:
            row.append(_cell(lambda v: f"{100 * v:.1f} %", summary.get(CHANGED)))
        if recovered is not None:
            share = recovered.get(condition)
            row.append("–" if share is None else f"{round(share)} %")
        rows.append(row)
    return header, rows


def knowledge_label(report: dict) -> str:
    return dict(map(tuple, report["columns"])).get(report["knowledge"], report["knowledge"])


def _cell(fmt, value) -> str:
    return "n/a" if value is None else fmt(value)
