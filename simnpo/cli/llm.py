"""``simnpo eval`` and ``simnpo llm`` (``relearn.py``: ``simnpo relearn``) on any benchmark of
``simnpo.llm.benchmarks.BENCHMARKS``.

Options map onto the config dataclasses by name: the trainer's and the loss library's fields (``TRAINING_OPTIONS``,
``LOSS_OPTIONS``) and each benchmark's own (``Benchmark.options``). An option counts as given when it was on the
command line (click's parameter source), never by comparing it with a default.
"""

from __future__ import annotations

from pathlib import Path

import typer

from simnpo.cli.common import app, echo_error, parse_list, print_table, progress_bar, user_errors
from simnpo.cli.options import (
    BENCH,
    CACHE_DIR,
    CONFIG,
    CORPUS,
    DATA,
    DEVICE,
    DRY_RUN,
    EVAL_BATCH_SIZE,
    FINETUNE_EPOCHS,
    GENERATION_BATCH_SIZE,
    GGUF_FILE,
    LIMIT,
    MAX_NEW_TOKENS,
    MIA,
    MIA_REFERENCE,
    PAD_TOKEN,
    PANELS,
    PROTOCOL,
    RETAIN_RESULTS,
    RETRAIN_AUC,
    SPLIT,
    TASKS,
    TEMPLATE,
    TORCH_DTYPE,
    given_options,
    in_panels,
)

MODEL_HELP = "Model folder, hub id or GGUF file (FILE.gguf)"


def given(ctx: typer.Context, names) -> dict:
    """The options among ``names`` that were given, on the command line or by ``--config``, with their values."""
    return {name: value for name, value in given_options(ctx).items() if name in names}


def benchmark(name: str):
    from simnpo.llm.benchmarks import BENCHMARKS

    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; use one of {', '.join(BENCHMARKS)}")
    return BENCHMARKS[name]


# an option named for what it sets where the settings' field is not: --eval-batch-size sets the evaluation's batch_size
SETTINGS_FIELDS = {"eval_batch_size": "batch_size"}


def bench_options(ctx: typer.Context, bench, exclude: tuple[str, ...] = ()) -> dict:
    """The benchmark options given on the command line, by the names of its settings' fields; one of another benchmark
    is refused with one line."""
    from simnpo.llm.benchmarks import BENCHMARKS

    every = {name for b in BENCHMARKS.values() for name in b.options} - set(exclude)
    values = given(ctx, sorted(every))
    for name in values:
        if name not in bench.options:
            raise ValueError(f"--{name.replace('_', '-')} is not an option of --bench {bench.name}")
    return {SETTINGS_FIELDS.get(k, k): str(v) if isinstance(v, Path) else v for k, v in values.items()}  # paths: text


def make_request(
    bench, model, data, pad_token, device, finetune_epochs, cache_dir, torch_dtype="float32", gguf_file=None
):
    """The request of a command; a GGUF checkpoint (``--model FILE.gguf``, or a folder and ``--gguf-file``) is
    converted once to a cached Hugging Face folder, which the request names (and the file it came from)."""
    from simnpo.llm.benchmark import Request
    from simnpo.llm.gguf import converted_folder, is_gguf
    from simnpo.llm.models import check_dtype
    from simnpo.llm.runtime import resolve_device

    check_dtype(torch_dtype)
    resolve_device(device)  # checked here; the request keeps it as given (auto resolves where each model loads)
    converted_from = None
    if is_gguf(model, gguf_file):
        if model is None:
            raise ValueError("--gguf-file needs --model: the folder (or hub repository) that holds the file")
        folder, path = converted_folder(model, gguf_file, announce=lambda line: typer.echo(line, err=True))
        model, converted_from = str(folder), str(path)
    if model is None and data != "builtin":
        raise ValueError("--data needs --model: the built-in models only know the built-in data")
    cache_dir = cache_dir or Path(f"runs/.cache/{bench.name}")
    return Request(model, data, pad_token, device, torch_dtype, finetune_epochs, cache_dir, converted_from)


@app.command("eval")
def eval_command(
    ctx: typer.Context,
    bench: str = BENCH,
    model: str | None = typer.Option(None, help=MODEL_HELP + " (default: the built-in starting models)."),
    gguf_file: str | None = GGUF_FILE,
    data: str = DATA,
    split: str | None = SPLIT,
    corpus: str | None = CORPUS,
    retrain_auc: float | None = RETRAIN_AUC,
    tasks: str | None = TASKS,
    limit: int | None = LIMIT,
    template: str | None = TEMPLATE,
    retain_results: Path | None = RETAIN_RESULTS,
    protocol: str | None = PROTOCOL,
    mia: str | None = MIA,
    mia_reference: str | None = MIA_REFERENCE,
    max_new_tokens: int = MAX_NEW_TOKENS,
    eval_batch_size: int | None = EVAL_BATCH_SIZE,
    generation_batch_size: int | None = GENERATION_BATCH_SIZE,
    pad_token: str | None = PAD_TOKEN,
    device: str = DEVICE,
    torch_dtype: str = TORCH_DTYPE,
    finetune_epochs: int | None = FINETUNE_EPOCHS,
    cache_dir: Path | None = CACHE_DIR,
    dry_run: bool = DRY_RUN,
    out: Path | None = typer.Option(None, help="Output folder (default: a new runs/eval-BENCH-<time>)."),
    config_file: Path | None = CONFIG,
) -> None:
    """Evaluate a model with the benchmark's exact metrics; with no --model, the built-in benchmark's starting
    models (mini-TOFU: target and retain; mini-MUSE: target and retrain; mini-WMDP: target). Several processes
    (accelerate launch) share the items out."""
    from simnpo.llm.distributed import on_main
    from simnpo.llm.driver import evaluate_models
    from simnpo.llm.runtime import make_accelerator, start_run
    from simnpo.runs import EVALUATION, REQUEST

    with user_errors():
        chosen = benchmark(bench)
        settings = chosen.make_settings(bench_options(ctx, chosen))
        request = make_request(
            chosen, model, data, pad_token, device, finetune_epochs, cache_dir, torch_dtype, gguf_file
        )
        if dry_run:
            settings, notes = chosen.resolve(request, settings)
            configs = {REQUEST: request, EVALUATION: settings, **chosen.extra_configs(settings)}
            return print_dry_run({"command": "eval", "bench": bench, "notes": notes}, configs)
        accelerator = make_accelerator(device, bf16=False)
        plan = on_main(accelerator, lambda: chosen.plan(request, settings), others_too=True)  # main builds caches
        configs = {REQUEST: request, EVALUATION: plan.settings, **chosen.extra_configs(plan.settings)}
        folder, _ = start_run(
            accelerator, out, f"eval-{bench}", configs, False, command="eval", bench=bench, options=given_options(ctx)
        )
    if accelerator.is_main_process:
        typer.echo("\n".join([*source_lines(request), *plan.notes, precision_line(accelerator, request)]))
    with user_errors(), progress_bar(enabled=accelerator.is_main_process) as progress:  # e.g. the harness's data
        rows, notes, reference = evaluate_models(chosen, request, plan, folder, progress, accelerator)
    if accelerator.is_main_process:
        print_results(chosen, rows, notes, reference, plan.settings, False, folder)


@app.command("llm")
def llm_command(
    ctx: typer.Context,
    bench: str = BENCH,
    model: str | None = typer.Option(None, help=MODEL_HELP + " to unlearn (default: the built-in target)."),
    gguf_file: str | None = GGUF_FILE,
    data: str = DATA,
    split: str | None = SPLIT,
    corpus: str | None = CORPUS,
    retrain_auc: float | None = RETRAIN_AUC,
    tasks: str | None = TASKS,
    limit: int | None = LIMIT,
    forget_corpora: str | None = typer.Option(
        None, help="WMDP forget corpora, comma-separated: bio, cyber (default: both; built-in: bio)."
    ),
    retain_corpus: str | None = typer.Option(
        None, help="WMDP retain text: wikitext (default; built-in: bio), bio or cyber."
    ),
    bio_corpus: Path | None = typer.Option(None, help="WMDP: the gated bio forget corpus (bio_remove_dataset.jsonl)."),
    max_forget_chunks: int | None = typer.Option(None, help="WMDP: unlearn on the first N forget chunks only."),
    methods: str | None = typer.Option(
        None,
        help="Unlearning methods, comma-separated: ga, graddiff, npo, npo_nll, npo_kl, simnpo, simnpo_nll, simnpo_kl, "
        "idkpo, rmu, undial, wga, satimp, ceu, pdu, or all (every one the benchmark runs; default: npo_nll,simnpo_nll; "
        "WMDP also rmu).",
    ),
    preset: str | None = typer.Option(
        None,
        help="Named settings per method, e.g. paper-forget10 (default: mini-BENCH on built-in data, the paper's "
        "for the split or corpus on real data).",
    ),
    template: str | None = TEMPLATE,
    retain_results: Path | None = RETAIN_RESULTS,
    protocol: str | None = PROTOCOL,
    beta: float | None = typer.Option(None, help="β for every method (default: the preset's per method)."),
    margin: float | None = typer.Option(None, help="SimNPO's margin γ."),
    margin_convention: str | None = typer.Option(None, help="paper (default) or authors_code."),
    forget_weight: float | None = typer.Option(None, help="Weight of the forget loss (the published 'λ')."),
    retain_weight: float | None = typer.Option(None, help="Weight of the retain term."),
    kl_positions: str | None = typer.Option(None, help="KL term over response (default) or all positions."),
    steering: float | None = typer.Option(None, help="RMU's steering coefficient c (default 6.5)."),
    beta2: float | None = typer.Option(None, help="SatImp's β2 (its β1 is --beta; default 1)."),
    ignore_first_answer_tokens: int | None = typer.Option(
        None, help="CE-U: answer tokens left out at the start of each answer (default 1)."
    ),
    undial_positions: str | None = typer.Option(None, help="UNDIAL: answer (default) or open_unlearning positions."),
    flattening_positions: str | None = typer.Option(
        None, help="PDU's forget loss: answer (default) or open_unlearning positions."
    ),
    retain_epsilon: float | None = typer.Option(
        None, help="PDU: the bound ε on the retain loss (default: (1 + tolerance) × the starting model's)."
    ),
    retain_tolerance: float | None = typer.Option(None, help="PDU: the tolerance of the default ε (default 0.1)."),
    dual_step_size: float | None = typer.Option(None, help="PDU: the dual variable's step size η (default 1)."),
    dual_update: str | None = typer.Option(None, help="PDU: move the dual variable every step (default) or epoch."),
    dual_warmup_epochs: float | None = typer.Option(None, help="PDU: epochs before the dual variable moves (5)."),
    rmu_layer: int | None = typer.Option(None, help="RMU: the decoder layer whose activations it moves (default 7)."),
    rmu_params: str | None = typer.Option(
        None,
        help="RMU: regex of the parameter names it trains (default: that layer's and the two lower layers' "
        "mlp.down_proj.weight).",
    ),
    lr: float | None = typer.Option(None, help="Peak learning rate."),
    epochs: int | None = typer.Option(None, help="Epochs over the forget set."),
    batch_size: int | None = typer.Option(None, help="Effective batch size (all processes and accumulation)."),
    per_device_batch_size: int | None = typer.Option(None, help="Batch per process and micro-step."),
    weight_decay: float | None = typer.Option(None, help="AdamW weight decay."),
    warmup_epochs: float | None = typer.Option(None, help="Linear warm-up length in epochs."),
    schedule: str | None = typer.Option(None, help="linear (decay to 0 after warm-up) or constant."),
    optimizer: str | None = typer.Option(None, help="adamw or paged_adamw_32bit (bitsandbytes)."),
    bf16: bool | None = typer.Option(None, "--bf16/--no-bf16", help="bfloat16 mixed precision."),
    gradient_checkpointing: bool | None = typer.Option(None, "--gradient-checkpointing/--no-gradient-checkpointing"),
    lora_rank: int | None = typer.Option(None, help="LoRA rank (0: full fine-tuning; needs peft)."),
    max_length: int | None = typer.Option(None, help="Longest training sequence (MUSE: the chunk length)."),
    seed: int | None = typer.Option(None, help="Seed of batch order, retain pairing and refusals."),
    eval_every: int | None = typer.Option(
        None,
        help="Also evaluate every N epochs (0: only after the last; default 1 on built-in TOFU and MUSE data, "
        "the trade-off curves, else 0).",
    ),
    mia: str | None = MIA,
    mia_reference: str | None = MIA_REFERENCE,
    max_new_tokens: int = MAX_NEW_TOKENS,
    eval_batch_size: int | None = EVAL_BATCH_SIZE,
    generation_batch_size: int | None = GENERATION_BATCH_SIZE,
    pad_token: str | None = PAD_TOKEN,
    device: str = DEVICE,
    torch_dtype: str = TORCH_DTYPE,
    finetune_epochs: int | None = FINETUNE_EPOCHS,
    cache_dir: Path | None = CACHE_DIR,
    report_to: str = typer.Option(
        "none", help="Log losses, lr, gradient norm and evaluations: tensorboard (into RUN/tracking), wandb, mlflow."
    ),
    dry_run: bool = DRY_RUN,
    out: Path | None = typer.Option(None, help="Output folder; an existing run with the same options resumes."),
    config_file: Path | None = CONFIG,
) -> None:
    """Unlearn with each method (NPO and SimNPO by default, and RMU on WMDP) and evaluate with the benchmark's
    metrics; with no --model, on the built-in mini-TOFU, mini-MUSE or mini-WMDP from its target model.
    Multi-GPU: accelerate launch $(which simnpo) llm ..."""
    from simnpo.llm.distributed import check_backend, on_main
    from simnpo.llm.driver import LLMRunConfig, describe_methods, method_configs
    from simnpo.llm.rmu import check_rmu
    from simnpo.llm.runtime import check_report_to, make_accelerator, start_run
    from simnpo.llm.trainer import LOSS_OPTIONS, TRAINING_OPTIONS
    from simnpo.runs import EVALUATION, REQUEST, RUN

    with user_errors():
        chosen = benchmark(bench)
        options = bench_options(ctx, chosen, exclude=TRAINING_OPTIONS)
        preset = preset or chosen.default_preset(data, options)
        values = check_preset(chosen, preset, options)
        settings = chosen.make_settings({**values.get("defaults", {}), **values.get("settings", {}), **options})
        method_names = parse_list(methods, str, "--methods") if methods is not None else chosen.default_methods
        method_names = chosen.runnable_methods() if method_names == ("all",) else method_names
        chosen.check_methods(method_names)
        trainers = method_configs(method_names, preset, values, given(ctx, LOSS_OPTIONS + TRAINING_OPTIONS))
        if eval_every is None:  # the built-ins draw each method's path; real runs evaluate at the end
            eval_every = 1 if data == "builtin" and chosen.best is not None else 0
        run = LLMRunConfig(methods=method_names, eval_every=eval_every, trainers=tuple(trainers.values()))
        request = make_request(
            chosen, model, data, pad_token, device, finetune_epochs, cache_dir, torch_dtype, gguf_file
        )
        head = {"command": "llm", "bench": bench, "preset": preset, "methods": trainers}
        if dry_run:
            settings, notes = chosen.resolve(request, settings)
            configs = {REQUEST: request, RUN: run, EVALUATION: settings, **chosen.extra_configs(settings)}
            return print_dry_run({**head, "notes": notes}, configs)
        check_report_to(report_to)
        accelerator = make_accelerator(request.device, any(t.bf16 for t in run.trainers))
        for trainer in run.trainers:  # before any model is loaded
            check_backend(accelerator, trainer.method, trainer.lora_rank)
        plan = on_main(accelerator, lambda: chosen.plan(request, settings, True), others_too=True)
        for trainer in run.trainers:
            if trainer.method == "rmu":
                check_rmu(trainer.rmu_layer, trainer.rmu_params, plan.models[-1][1])
        configs = {REQUEST: request, RUN: run, EVALUATION: plan.settings, **chosen.extra_configs(plan.settings)}
        extra = {"seed": run.trainers[0].seed, "command": "llm", "preset": preset, "bench": bench}
        extra |= {"report_to": report_to, "options": given_options(ctx)}
        folder, resumed = start_run(accelerator, out, f"llm-{bench}", configs, True, **extra)
    if accelerator.is_main_process:
        lines = [describe_methods(preset, trainers), *source_lines(request), *plan.notes]
        lines.append(precision_line(accelerator, request))
        typer.echo("\n".join(lines))
        if resumed:
            typer.echo(f"resuming the run in {folder}", err=True)
    run_and_print(chosen, request, run, plan, folder, accelerator)


def check_preset(bench, name: str, options: dict) -> dict:
    """The benchmark's preset ``name``, checked against the split or corpus given (and named when it belongs to
    another benchmark)."""
    from dataclasses import fields

    from simnpo.llm.benchmarks import BENCHMARKS
    from simnpo.llm.presets import check_preset as check
    from simnpo.llm.presets import check_preset_keys
    from simnpo.llm.trainer import LOSS_OPTIONS, TRAINING_OPTIONS

    elsewhere = {p: b.name for b in BENCHMARKS.values() if b is not bench for p in b.presets}
    chosen = check(bench.presets, name, options, elsewhere)
    check_preset_keys(name, chosen, (f.name for f in fields(bench.settings)), LOSS_OPTIONS + TRAINING_OPTIONS)
    return chosen


def source_lines(request) -> list[str]:
    """What the model is, when that is not its name: a GGUF checkpoint read from its converted folder."""
    from simnpo.llm.gguf import describe

    return [] if request.converted_from is None else [describe(Path(request.model), Path(request.converted_from))]


def precision_line(accelerator, request) -> str:
    """The one precision rule of a table: weights' dtype and autocast, the same for every model evaluated."""
    autocast = "no autocast" if accelerator.mixed_precision == "no" else f"{accelerator.mixed_precision} autocast"
    processes = f", {accelerator.num_processes} processes" if accelerator.num_processes > 1 else ""
    return f"precision: {request.torch_dtype} weights, {autocast} for every model of the table{processes}"


def run_and_print(bench, request, run, plan, folder: Path, accelerator) -> None:
    """``simnpo llm`` after its checks: run, then print the table (a non-finite loss: one line, exit 1)."""
    from simnpo.llm.driver import run_llm

    main = accelerator.is_main_process
    with progress_bar(enabled=main) as progress:
        try:
            rows, notes, reference = run_llm(bench, request, run, plan, folder, accelerator, progress)
        except RuntimeError as err:  # NonFiniteLoss and friends: one line, exit 1, written results stay
            echo_error(err)
            accelerator.end_training()  # every process got here (the NaN is agreed): leave the group cleanly
            raise typer.Exit(code=1) from None
        except ValueError as err:  # bad input found once a model is loaded (e.g. --rmu-layer): one line, exit 2
            echo_error(err)
            raise typer.Exit(code=2) from None
    if main:
        print_results(bench, rows, notes, reference, plan.settings, True, folder)


def print_dry_run(head: dict, configs: dict) -> None:
    """``--dry-run``: every resolved configuration as one JSON object on stdout (``head`` first: for ``llm`` each
    method's configuration by name), then exit 0."""
    from simnpo.runs import json_text

    typer.echo(json_text({**head, "configs": configs}))


def print_results(bench, rows: list[list[str]], notes: list[str], reference, settings, after: bool, folder: Path):
    """The benchmark's table (``after``: unlearning), the notes under it, its footer, and where it was written."""
    print_table(["model", *bench.table.header(settings)], rows, bench.table.title(settings, after))
    for line in [*notes, *bench.table.footer(reference)]:
        typer.echo(line)
    typer.echo(f"wrote {folder}")


in_panels(eval_command, PANELS)
in_panels(llm_command, PANELS)
