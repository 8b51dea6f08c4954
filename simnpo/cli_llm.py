"""The LLM commands of ``simnpo``: ``eval``, ``llm`` and ``relearn`` (registered on the app of ``simnpo.cli``)."""

from __future__ import annotations

from pathlib import Path

import typer

from simnpo.cli import app, parse_list, print_table, progress_bar, user_errors

TEMPLATE_HELP = "TOFU prompt template: llama2, phi, chat, chat-system or llama3 (default: detected from the model)."
DRY_RUN_HELP = "Print the fully resolved configuration as JSON and exit (loads no model, writes nothing)."


@app.command("eval")
def eval_command(
    bench: str = typer.Option(..., help="Benchmark: tofu or muse."),
    model: str | None = typer.Option(None, help="Model folder or hub id (default: the built-in starting models)."),
    data: str = typer.Option("builtin", help="Data: builtin, a local folder of the benchmark's files, or a hub id."),
    corpus: str = typer.Option("news", help="MUSE corpus: news or books (sets the published retrain AUC)."),
    retrain_auc: float | None = typer.Option(None, help="MUSE: the retrain model's PrivLeak AUC (default: published)."),
    split: str = typer.Option("forget10", help="Forget split: forget01, forget05 or forget10."),
    retain_results: Path | None = typer.Option(
        None, help="The retain model's TOFU_EVAL.json (ours or open-unlearning's)."
    ),
    protocol: str = typer.Option("open-unlearning", help="open-unlearning (all items, 200 new tokens) or original."),
    max_new_tokens: int = typer.Option(200, help="Generation length (open-unlearning protocol)."),
    template: str | None = typer.Option(None, help=TEMPLATE_HELP),
    batch_size: int = typer.Option(64, help="Sequences per scoring and generation batch."),
    pad_token: str | None = typer.Option(None, help="Set a missing pad token, e.g. eos."),
    device: str = typer.Option("cpu", help="Torch device."),
    finetune_epochs: int | None = typer.Option(None, help="Epochs of the built-in fine-tuning (TOFU 30, MUSE 100)."),
    cache_dir: Path | None = typer.Option(None, help="Cache of the built-in data and models (runs/.cache/BENCH)."),
    dry_run: bool = typer.Option(False, "--dry-run", help=DRY_RUN_HELP),
    out: Path | None = typer.Option(None, help="Output folder (default: a new runs/eval-BENCH-<time>)."),
) -> None:
    """Evaluate a model with the benchmark's exact metrics; with no --model, the built-in benchmark's starting
    models (mini-TOFU: target and retain; mini-MUSE: target and retrain)."""
    from simnpo.llm.tofu_eval import TofuEvalConfig
    from simnpo.runs import run_dir, save_config

    with user_errors():
        if bench not in ("tofu", "muse"):
            raise ValueError(f"unknown benchmark {bench!r}; use tofu or muse")
        if device.startswith("cuda") and not torch_cuda_available():
            raise ValueError(f"device {device!r} asked for but CUDA is not available; use --device cpu")
        cache_dir = cache_dir or Path(f"runs/.cache/{bench}")
        if bench == "muse":
            if template is not None:
                raise ValueError("--template is not an option of --bench muse (MUSE scores raw text)")
            return _eval_muse(
                model,
                data,
                corpus,
                retrain_auc,
                batch_size,
                pad_token,
                device,
                finetune_epochs,
                cache_dir,
                out,
                dry_run,
            )
        finetune_epochs = finetune_epochs or 30
        config = TofuEvalConfig(
            split=split,
            protocol=protocol,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            generation_batch_size=batch_size,
            template=template,
        )
        if model is None and data != "builtin":
            raise ValueError("--data needs --model: the built-in models only know the built-in data")
        from simnpo.llm.tofu_run import EvalRequest, plan_tofu_eval, resolve_eval_template, run_tofu_eval

        request = EvalRequest(
            model=model,
            data=data,
            retain_results=retain_results,
            pad_token=pad_token,
            device=device,
            finetune_epochs=finetune_epochs,
            cache_dir=cache_dir,
        )
        if dry_run:
            config, reason = resolve_eval_template(request, config)
            return print_dry_run({"command": "eval", "bench": bench, "template_reason": reason}, config, request)
        plan = plan_tofu_eval(request, config)
        folder = run_dir(out, "eval-tofu")
    save_config(folder, plan.config, request, plan.config.prompt_template(), command="eval")
    typer.echo(plan.config.prompt_template().describe(plan.template_reason))
    with progress_bar() as progress:
        rows, notes = run_tofu_eval(request, plan, folder, progress)
    print_tofu_table(rows, notes, f"TOFU {split} ({protocol} protocol)", folder)


def _eval_muse(model, data, corpus, retrain_auc, batch_size, pad_token, device, finetune_epochs, cache_dir, out, dry):
    from simnpo.llm.muse_eval import MuseEvalConfig
    from simnpo.llm.muse_run import MuseRequest, plan_muse_eval, run_muse_eval
    from simnpo.runs import run_dir, save_config

    with user_errors():
        config = MuseEvalConfig(corpus=corpus, batch_size=batch_size)
        epochs = {"finetune_epochs": finetune_epochs} if finetune_epochs else {}
        request = MuseRequest(model, data, retrain_auc, pad_token, device, cache_dir=cache_dir, **epochs)
        if dry:
            return print_dry_run({"command": "eval", "bench": "muse"}, config, request)
        plan = plan_muse_eval(request, config)
        folder = run_dir(out, "eval-muse")
    save_config(folder, config, request, command="eval")
    with progress_bar() as progress:
        rows, auc = run_muse_eval(request, config, plan, folder, progress)
    print_muse_table(rows, f"MUSE-{corpus.capitalize()}", auc, folder)


@app.command("llm")
def llm_command(
    bench: str = typer.Option("tofu", help="Benchmark: tofu or muse."),
    model: str | None = typer.Option(None, help="Model folder or hub id to unlearn (default: the built-in target)."),
    data: str = typer.Option("builtin", help="Data: builtin, a local folder of the benchmark's files, or a hub id."),
    split: str | None = typer.Option(None, help="TOFU forget split: forget01, forget05 or forget10 (forget10)."),
    corpus: str | None = typer.Option(None, help="MUSE corpus: news or books (default: news)."),
    retrain_auc: float | None = typer.Option(None, help="MUSE: the retrain model's PrivLeak AUC (default: published)."),
    methods: str = typer.Option("npo_nll,simnpo_nll", help="Unlearning methods, comma-separated (see README)."),
    preset: str | None = typer.Option(
        None,
        help="Named settings per method, e.g. paper-forget10 (default: mini-BENCH on built-in data, the paper's "
        "for the split or corpus on real data).",
    ),
    template: str | None = typer.Option(None, help=TEMPLATE_HELP),
    eval_every: int = typer.Option(0, help="Also evaluate every N epochs (0: only after the last)."),
    retain_results: Path | None = typer.Option(None, help="The retain model's TOFU_EVAL.json for forget quality."),
    beta: float | None = typer.Option(None, help="β for every method (default: the preset's per method)."),
    margin: float | None = typer.Option(None, help="SimNPO's margin γ."),
    margin_convention: str | None = typer.Option(None, help="paper (default) or authors_code."),
    forget_weight: float | None = typer.Option(None, help="Weight of the forget loss (the published 'λ')."),
    retain_weight: float | None = typer.Option(None, help="Weight of the retain term."),
    kl_positions: str | None = typer.Option(None, help="KL term over response (default) or all positions."),
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
    max_new_tokens: int = typer.Option(200, help="TOFU: generation length in evaluations."),
    pad_token: str | None = typer.Option(None, help="Set a missing pad token, e.g. eos."),
    device: str = typer.Option("auto", help="auto (GPU when there is one), cpu or cuda."),
    finetune_epochs: int | None = typer.Option(None, help="Epochs of the built-in fine-tuning (TOFU 30, MUSE 100)."),
    cache_dir: Path | None = typer.Option(None, help="Cache of the built-in data and models (runs/.cache/BENCH)."),
    dry_run: bool = typer.Option(False, "--dry-run", help=DRY_RUN_HELP),
    out: Path | None = typer.Option(None, help="Output folder; an existing run with the same options resumes."),
) -> None:
    """Unlearn with each method (NPO and SimNPO by default) and evaluate with the benchmark's metrics; with no
    --model, on the built-in mini-TOFU or mini-MUSE from its target model.
    Multi-GPU: accelerate launch $(which simnpo) llm ..."""
    from simnpo.llm import presets
    from simnpo.losses import METHODS, method_needs
    from simnpo.runs import resume_or_save_config, run_dir

    given = {k: v for k, v in locals().items() if v is not None and k in _TRAINER_OPTIONS}
    with user_errors():
        if bench not in ("tofu", "muse"):
            raise ValueError(f"unknown benchmark {bench!r}; use tofu or muse")
        if model is None and data != "builtin":
            raise ValueError("--data needs --model: the built-in models only know the built-in data")
        tofu_only = {"--split": split, "--retain-results": retain_results, "--max-new-tokens": max_new_tokens != 200}
        refuse_other_bench_options(
            bench, {**tofu_only, "--template": template}, {"--corpus": corpus, "--retrain-auc": retrain_auc}
        )
        preset = preset or presets.default_preset(bench, data, split, corpus)
        chosen = presets.preset(preset, bench, given)
        cache_dir = cache_dir or Path(f"runs/.cache/{bench}")
        if device == "cuda" and not torch_cuda_available():
            raise ValueError("device 'cuda' asked for but CUDA is not available; use --device cpu")
        from simnpo.llm.unlearn_runs import LLMRunConfig, describe_methods, method_configs

        method_names = parse_list(methods, str, "--methods")
        if bench == "muse" and any("idk_logps" in method_needs(m) for m in method_names if m in METHODS):
            raise ValueError("idkpo needs question/answer pairs to pair with refusals; MUSE's forget set is text")
        configs = method_configs(method_names, preset, given)
        run = LLMRunConfig(methods=method_names, eval_every=eval_every, trainers=tuple(configs.values()))
        epochs = {"finetune_epochs": finetune_epochs} if finetune_epochs else {}
        head = {"command": "llm", "bench": bench, "preset": preset, "methods": configs}
        if bench == "muse":
            from simnpo.llm.muse_eval import MuseEvalConfig
            from simnpo.llm.muse_run import MuseRequest, plan_muse_eval, run_llm_muse

            eval_config = MuseEvalConfig(corpus=corpus or chosen.get("corpus", "news"))
            request = MuseRequest(model, data, retrain_auc, pad_token, cache_dir=cache_dir, **epochs)
            if dry_run:
                return print_dry_run(head, run, eval_config, request)
            plan = plan_muse_eval(request, eval_config, train=True)
        else:
            from simnpo.llm.tofu_eval import TofuEvalConfig
            from simnpo.llm.tofu_run import EvalRequest, plan_tofu_eval, resolve_eval_template, run_llm_tofu

            split = split or chosen.get("split", "forget10")
            eval_config = TofuEvalConfig(split=split, max_new_tokens=max_new_tokens, template=template)
            request = EvalRequest(model, data, retain_results, pad_token, cache_dir=cache_dir, **epochs)
            if dry_run:
                eval_config, reason = resolve_eval_template(request, eval_config)
                head["template_reason"] = reason
                return print_dry_run(head, run, eval_config, eval_config.prompt_template(), request)
            plan = plan_tofu_eval(request, eval_config)
            eval_config = plan.config
        from accelerate import Accelerator

        bf16 = any(config.bf16 for config in configs.values())
        accelerator = Accelerator(cpu=device == "cpu", mixed_precision="bf16" if bf16 else "no")
        folder = run_dir(out, f"llm-{bench}")
        seed = run.trainers[0].seed
        saved = [eval_config.prompt_template()] if bench == "tofu" else []
        resumed = resume_or_save_config(
            folder, request, run, eval_config, *saved, seed=seed, command="llm", preset=preset
        )
    main = accelerator.is_main_process
    if main:
        typer.echo(describe_methods(preset, configs))
        if bench == "tofu":
            typer.echo(eval_config.prompt_template().describe(plan.template_reason))
    if main and resumed:
        typer.echo(f"resuming the run in {folder}", err=True)
    with progress_bar(enabled=main) as progress:
        try:
            if bench == "muse":
                rows, auc = run_llm_muse(request, run, eval_config, plan, folder, accelerator, progress)
            else:
                rows, notes = run_llm_tofu(request, run, plan, folder, accelerator, progress)
        except RuntimeError as err:  # NonFiniteLoss and friends: one line, exit 1, written results stay
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(code=1) from None
    if main and bench == "muse":
        print_muse_table(rows, f"MUSE-{eval_config.corpus.capitalize()}: before and after unlearning", auc, folder)
    elif main:
        print_tofu_table(rows, notes, f"TOFU {eval_config.split}: before and after unlearning", folder)


def refuse_other_bench_options(bench: str, tofu_only: dict, muse_only: dict) -> None:
    """One line for the first option given that belongs to the other benchmark (None/False: not given)."""
    for flag, value in (tofu_only if bench == "muse" else muse_only).items():
        if value not in (None, False):
            raise ValueError(f"{flag} is not an option of --bench {bench}")


def print_dry_run(head: dict, *configs) -> None:
    """``--dry-run``: every resolved configuration as one JSON object on stdout (``head`` first: for ``llm`` each
    method's configuration by name), then exit 0."""
    import json

    from simnpo.runs import _jsonable

    payload = {**head, "configs": {type(c).__name__: c for c in configs}}
    typer.echo(json.dumps(payload, indent=2, default=_jsonable))


@app.command()
def relearn(
    run: Path | None = typer.Argument(None, help="A `simnpo llm` run folder: relearn each of its unlearned models."),
    model: str | None = typer.Option(None, help="Or one unlearned model folder (with --data)."),
    data: str = typer.Option("builtin", help="With --model: builtin, a local TOFU folder, or a hub id."),
    split: str = typer.Option("forget10", help="With --model: the forget split."),
    retain_results: Path | None = typer.Option(None, help="With --model: the retain model's TOFU_EVAL.json."),
    fraction: float = typer.Option(0.5, help="Fraction of the forget set to relearn on."),
    steps: int = typer.Option(50, help="Relearning steps."),
    lr: float = typer.Option(1e-4, help="Learning rate (AdamW, constant)."),
    batch_size: int = typer.Option(4, help="Batch size."),
    eval_at: str = typer.Option("0,5,10,25,50", help="Steps at which to evaluate, comma-separated."),
    max_new_tokens: int = typer.Option(200, help="Generation length in evaluations."),
    seed: int = typer.Option(0, help="Seed of the relearned subset and batch order."),
    device: str = typer.Option("cpu", help="Torch device."),
    cache_dir: Path = typer.Option(Path("runs/.cache/tofu"), help="Cache of the built-in data and models."),
    out: Path | None = typer.Option(None, help="Output folder (default: RUN/relearn or runs/relearn-<time>)."),
) -> None:
    """Relearning attack: fine-tune unlearned models on part of the forget set and report how forget metrics
    recover over the steps."""
    from simnpo.llm.relearn import RelearnConfig, relearn_targets
    from simnpo.llm.relearn import relearn as relearn_model
    from simnpo.llm.tofu_eval import TofuEvalConfig
    from simnpo.runs import run_dir, save_config

    with user_errors():
        if (run is None) == (model is None):
            raise ValueError("give either a `simnpo llm` run folder or --model")
        config = RelearnConfig(
            fraction=fraction,
            steps=steps,
            lr=lr,
            batch_size=batch_size,
            seed=seed,
            eval_at=parse_list(eval_at, int, "--eval-at"),
        )
        targets, data_path, eval_config, ratios = relearn_targets(
            run, model, data, TofuEvalConfig(split=split, max_new_tokens=max_new_tokens), retain_results, cache_dir
        )
        folder = run_dir(out if out or run is None else run / "relearn", "relearn")
    save_config(folder, config, eval_config, seed=seed, command="relearn")
    rows = []
    with progress_bar() as progress:
        for label, source in targets:
            curves = relearn_model(source, data_path, config, eval_config, ratios, folder / label, device, progress)
            fq = curves["forget_quality"]
            show = lambda v: "n/a" if v is None else f"{v:.3g}"  # noqa: E731
            rows.append(
                [
                    label,
                    show(fq[0]),
                    show(fq[-1]),
                    f"{curves['forget_Q_A_Prob'][0]:.3f}",
                    f"{curves['forget_Q_A_Prob'][-1]:.3f}",
                    f"{curves['forget_Q_A_ROUGE'][0]:.3f}",
                    f"{curves['forget_Q_A_ROUGE'][-1]:.3f}",
                ]
            )
    header = ["model", "forget quality before", "after", "forget prob before", "after", "forget ROUGE before", "after"]
    print_table(
        header, rows, f"Relearning on {fraction:.0%} of {eval_config.split}, {steps} steps (lower after = more robust)"
    )
    typer.echo(f"wrote {folder}")


_TRAINER_OPTIONS = {
    "split",
    "corpus",
    "max_length",
    "beta",
    "margin",
    "margin_convention",
    "forget_weight",
    "retain_weight",
    "kl_positions",
    "lr",
    "epochs",
    "batch_size",
    "per_device_batch_size",
    "weight_decay",
    "warmup_epochs",
    "schedule",
    "optimizer",
    "bf16",
    "gradient_checkpointing",
    "lora_rank",
    "seed",
}


def torch_cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def print_tofu_table(rows: list[list[str]], notes: list[str], title: str, folder: Path) -> None:
    """The TOFU table of `eval` and `llm` (rows from ``tofu_run.table_row``), its notes, and where it was written."""
    header = [
        "model",
        "forget quality",
        "model utility",
        "forget truth ratio",
        "forget prob",
        "forget ROUGE-L",
        "answer loss/token",
    ]
    print_table(header, rows, title)
    for note in notes:
        typer.echo(note)
    typer.echo(f"wrote {folder}")


def print_muse_table(rows: list[list[str]], title: str, retrain_auc: float | None, folder: Path) -> None:
    """The four MUSE metrics per model (rows from ``muse_run.muse_row``) and the PrivLeak reference."""
    header = ["model", "VerbMem D_f ↓", "KnowMem D_f ↓", "PrivLeak (→ 0)", "KnowMem D_r ↑ (utility)"]
    print_table(header, rows, title)
    if retrain_auc is not None:
        typer.echo(f"PrivLeak relative to the retrain AUC {retrain_auc:.4f}")
    typer.echo(f"wrote {folder}")
