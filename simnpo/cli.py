"""The ``simnpo`` command. Each subcommand parses options into a frozen config, makes a run folder, saves the
config, and hands over to the package; a user error ends with one line on stderr and exit code 2."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import typer

import simnpo

app = typer.Typer(
    name="simnpo",
    help="LLM unlearning with SimNPO, NPO and friends (arXiv 2410.07163).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
T = TypeVar("T")


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn a ValueError (bad input) into one line on stderr and exit code 2, never a traceback."""
    try:
        yield
    except ValueError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(code=2) from None


def parse_list(text: str, kind: Callable[[str], T], option: str) -> tuple[T, ...]:
    """'5,20,80' -> (5, 20, 80); a clear error naming the option otherwise."""
    try:
        return tuple(kind(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"{option} takes comma-separated {kind.__name__} values, got {text!r}") from None


def _version(value: bool) -> None:
    if value:
        typer.echo(f"simnpo {simnpo.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """LLM unlearning with SimNPO, NPO and friends (arXiv 2410.07163)."""


@app.command()
def weights(
    lengths: str = typer.Option("5,20,80", help="Response lengths |y|, comma-separated."),
    betas: str = typer.Option("0.5,2.5", help="Inverse temperatures β, comma-separated (at most 4)."),
    ref_token_logprob: float = typer.Option(-1.0, help="NPO's reference log-likelihood per token (nats)."),
    margin: float = typer.Option(0.0, help="SimNPO's margin γ (paper convention)."),
    out: Path | None = typer.Option(None, help="Output folder [default: a new runs/weights-<time>]."),
) -> None:
    """Plot the NPO and SimNPO gradient weights against the sequence log-likelihood (PNG and PDF)."""
    from simnpo.analysis.weights import WeightsPlotConfig, write_weights_figure
    from simnpo.runs import run_dir, save_config

    with user_errors():
        config = WeightsPlotConfig(
            lengths=parse_list(lengths, int, "--lengths"),
            betas=parse_list(betas, float, "--betas"),
            ref_token_logprob=ref_token_logprob,
            margin=margin,
        )
        folder = run_dir(out, "weights")
    save_config(folder, config, command="weights")
    for path in write_weights_figure(config, folder):
        typer.echo(f"wrote {path}")


@app.command()
def markov(
    chains: int = typer.Option(3, help="Number of chains K: one retain chain and K-1 forget chains."),
    case: str = typer.Option("difficulty,length", help="Cases to run, comma-separated: difficulty, length."),
    methods: str = typer.Option("npo,simnpo", help="Unlearning methods, comma-separated (see README)."),
    iterations: int = typer.Option(50, help="Unlearning iterations, each evaluated."),
    beta: float = typer.Option(1.0, help="Inverse temperature β of NPO/SimNPO/IdkPO."),
    margin: float = typer.Option(0.0, help="SimNPO's margin γ (paper convention)."),
    forget_weight: float = typer.Option(1.0, help="Weight of the forget loss."),
    retain_weight: float = typer.Option(1.0, help="Weight of the retain term (methods with _nll/_kl)."),
    lr: float = typer.Option(5e-4, help="Unlearning learning rate (AdamW)."),
    batch_size: int = typer.Option(4, help="Unlearning batch size (forget and retain)."),
    pretrain_lr: float = typer.Option(5e-4, help="Pretraining/retraining learning rate."),
    pretrain_epochs: int = typer.Option(5, help="Pretraining/retraining epochs."),
    pretrain_batch_size: int = typer.Option(128, help="Pretraining/retraining batch size."),
    seeds: str = typer.Option("42", help="Seeds, comma-separated; several give mean ± std."),
    length: int = typer.Option(20, help="Length of the retain chain and of the long forget chains."),
    short_length: int = typer.Option(5, help="Length of the short forget chains (length case)."),
    retain_samples: int = typer.Option(10_000, help="Retain sequences (80/20 train/test)."),
    forget_samples: int = typer.Option(5_000, help="Sequences per forget chain (80/20 train/test)."),
    states: int = typer.Option(10, help="Number of states S."),
    leak: float = typer.Option(0.2, help="Probability mass leaking out of a chain's block."),
    block_size: int | None = typer.Option(None, help="States per chain block [default: S // K]."),
    chain_kind: str = typer.Option("block", help="Chain construction: block (the paper's) or dirichlet."),
    arch: str = typer.Option("authors", help="Transformer block: authors (the paper's code) or standard."),
    kl_to_retrained: bool = typer.Option(False, help="Also measure KL to the retrained model."),
    device: str = typer.Option("cpu", help="Torch device, e.g. cpu or cuda."),
    out: Path | None = typer.Option(None, help="Output folder; an existing run with the same options resumes."),
    cache_dir: Path = typer.Option(Path("runs/.cache/markov"), help="Cache of pretrained/retrained models."),
    no_cache: bool = typer.Option(False, help="Train the pretrained and retrained models afresh, unsaved."),
) -> None:
    """Reference-model bias on mixtures of Markov chains: NPO vs SimNPO on forget data of different difficulty
    and length, with exact KL metrics against the true chains."""
    import torch

    from simnpo.analysis.markov import findings, summary_rows, write_markov_figures
    from simnpo.markov.experiment import ExperimentConfig, run_experiment
    from simnpo.markov.model import ModelConfig
    from simnpo.markov.train import TrainConfig, UnlearnConfig
    from simnpo.runs import resume_or_save_config, run_dir

    with user_errors():
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device {device!r} asked for but CUDA is not available; use --device cpu")
        exp = ExperimentConfig(
            chains=chains,
            cases=parse_list(case, str, "--case"),
            seeds=parse_list(seeds, int, "--seeds"),
            long_length=length,
            short_length=short_length,
            retain_samples=retain_samples,
            forget_samples=forget_samples,
            states=states,
            leak=leak,
            block_size=block_size,
            chain_kind=chain_kind,
            kl_to_retrained=kl_to_retrained,
            device=device,
        )
        model_cfg = ModelConfig(arch=arch)
        train_cfg = TrainConfig(lr=pretrain_lr, batch_size=pretrain_batch_size, epochs=pretrain_epochs)
        unlearn_cfg = UnlearnConfig(
            methods=parse_list(methods, str, "--methods"),
            iterations=iterations,
            lr=lr,
            batch_size=batch_size,
            beta=beta,
            margin=margin,
            forget_weight=forget_weight,
            retain_weight=retain_weight,
        )
        folder = run_dir(out, "markov")
        resumed = resume_or_save_config(
            folder, exp, model_cfg, train_cfg, unlearn_cfg, seed=list(exp.seeds), command="markov"
        )
    if resumed:
        typer.echo(f"resuming the run in {folder}", err=True)
    with progress_bar() as progress:
        results = run_experiment(
            exp, model_cfg, train_cfg, unlearn_cfg, folder, None if no_cache else cache_dir, progress
        )
    paths = write_markov_figures(results, folder)
    print_table(
        ["case", "model", "retain KL"] + [f"{n} KL" for n in results_forget_names(results)],
        summary_rows(results),
        "KL to the true chains (nats/token)",
    )
    for finding in findings(results):
        verdict = "holds" if finding["holds"] else "does NOT hold"
        costs = ", ".join(f"{m} {v:.3f}" if v is not None else f"{m} never" for m, v in finding["retain_kl"].items())
        typer.echo(f"finding {verdict}: {finding['claim']} (retain KL: {costs})")
    for path in [folder / "config.json", folder / "results.json", *paths]:
        typer.echo(f"wrote {path}")


@app.command("eval")
def eval_command(
    bench: str = typer.Option(..., help="Benchmark: tofu."),
    model: str | None = typer.Option(None, help="Model folder or hub id [default: the built-in target and retain]."),
    data: str = typer.Option("builtin", help="TOFU data: builtin, a local folder of TOFU JSON files, or a hub id."),
    split: str = typer.Option("forget10", help="Forget split: forget01, forget05 or forget10."),
    retain_results: Path | None = typer.Option(
        None, help="The retain model's TOFU_EVAL.json (ours or open-unlearning's)."
    ),
    protocol: str = typer.Option("open-unlearning", help="open-unlearning (all items, 200 new tokens) or original."),
    max_new_tokens: int = typer.Option(200, help="Generation length (open-unlearning protocol)."),
    batch_size: int = typer.Option(64, help="Sequences per scoring and generation batch."),
    pad_token: str | None = typer.Option(None, help="Set a missing pad token, e.g. eos."),
    device: str = typer.Option("cpu", help="Torch device."),
    finetune_epochs: int = typer.Option(30, help="Epochs of the built-in target/retain fine-tuning."),
    cache_dir: Path = typer.Option(Path("runs/.cache/tofu"), help="Cache of the built-in data and models."),
    out: Path | None = typer.Option(None, help="Output folder [default: a new runs/eval-tofu-<time>]."),
) -> None:
    """Evaluate a model with TOFU's exact metrics; with no --model, the built-in mini-TOFU target and retain models."""
    import torch

    from simnpo.llm.tofu_eval import TofuEvalConfig
    from simnpo.runs import run_dir, save_config

    with user_errors():
        if bench != "tofu":
            raise ValueError(f"unknown benchmark {bench!r}; use tofu")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device {device!r} asked for but CUDA is not available; use --device cpu")
        config = TofuEvalConfig(
            split=split,
            protocol=protocol,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            generation_batch_size=batch_size,
        )
        if model is None and data != "builtin":
            raise ValueError("--data needs --model: the built-in models only know the built-in data")
        from simnpo.llm.tofu_run import EvalRequest, plan_tofu_eval, run_tofu_eval

        request = EvalRequest(
            model=model,
            data=data,
            retain_results=retain_results,
            pad_token=pad_token,
            device=device,
            finetune_epochs=finetune_epochs,
            cache_dir=cache_dir,
        )
        plan = plan_tofu_eval(request, config)
        folder = run_dir(out, "eval-tofu")
    save_config(folder, config, request, command="eval")
    with progress_bar() as progress:
        rows, notes = run_tofu_eval(request, config, plan, folder, progress)
    header = [
        "model",
        "forget quality",
        "model utility",
        "forget truth ratio",
        "forget prob",
        "forget ROUGE-L",
        "answer loss/token",
    ]
    print_table(header, rows, f"TOFU {split} ({protocol} protocol)")
    for note in notes:
        typer.echo(note)
    typer.echo(f"wrote {folder}")


@app.command("llm")
def llm_command(
    bench: str = typer.Option("tofu", help="Benchmark: tofu."),
    model: str | None = typer.Option(None, help="Model folder or hub id to unlearn [default: the built-in target]."),
    data: str = typer.Option("builtin", help="TOFU data: builtin, a local folder of TOFU JSON files, or a hub id."),
    split: str | None = typer.Option(None, help="Forget split: forget01, forget05 or forget10 [default: forget10]."),
    methods: str = typer.Option("npo_nll,simnpo_nll", help="Unlearning methods, comma-separated (see README)."),
    preset: str | None = typer.Option(None, help="Named settings, e.g. paper-forget10 [built-in data: mini-tofu]."),
    eval_every: int = typer.Option(0, help="Also evaluate every N epochs (0: only after the last)."),
    retain_results: Path | None = typer.Option(None, help="The retain model's TOFU_EVAL.json for forget quality."),
    beta: float | None = typer.Option(None, help="β [default per method: NPO/IdkPO 0.1, SimNPO 4.5]."),
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
    seed: int | None = typer.Option(None, help="Seed of batch order, retain pairing and refusals."),
    max_new_tokens: int = typer.Option(200, help="Generation length in evaluations."),
    pad_token: str | None = typer.Option(None, help="Set a missing pad token, e.g. eos."),
    device: str = typer.Option("auto", help="auto (GPU when there is one), cpu or cuda."),
    finetune_epochs: int = typer.Option(30, help="Epochs of the built-in target/retain fine-tuning."),
    cache_dir: Path = typer.Option(Path("runs/.cache/tofu"), help="Cache of the built-in data and models."),
    out: Path | None = typer.Option(None, help="Output folder; an existing run with the same options resumes."),
) -> None:
    """Unlearn with each method (NPO and SimNPO by default) and evaluate with TOFU's metrics; with no --model, on
    the built-in mini-TOFU from its target model. Multi-GPU: accelerate launch $(which simnpo) llm ..."""
    from simnpo.llm.presets import describe, resolve_preset
    from simnpo.llm.tofu_eval import TofuEvalConfig
    from simnpo.runs import resume_or_save_config, run_dir

    given = {k: v for k, v in locals().items() if v is not None and k in _TRAINER_OPTIONS}
    with user_errors():
        if bench != "tofu":
            raise ValueError(f"unknown benchmark {bench!r}; use tofu")
        if model is None and data != "builtin":
            raise ValueError("--data needs --model: the built-in models only know the built-in data")
        preset = preset or ("mini-tofu" if data == "builtin" else None)
        values = resolve_preset(preset, given)
        from accelerate import Accelerator

        from simnpo.llm.tofu_run import EvalRequest, plan_tofu_eval
        from simnpo.llm.tofu_unlearn import LLMRunConfig, method_configs, run_llm_tofu

        if device == "cuda" and not torch_cuda_available():
            raise ValueError("device 'cuda' asked for but CUDA is not available; use --device cpu")
        method_names = parse_list(methods, str, "--methods")
        configs = method_configs(method_names, values)
        run = LLMRunConfig(methods=method_names, eval_every=eval_every, trainers=tuple(configs.values()))
        eval_config = TofuEvalConfig(split=values.get("split", "forget10"), max_new_tokens=max_new_tokens)
        request = EvalRequest(model=model, data=data, retain_results=retain_results, pad_token=pad_token,
                              finetune_epochs=finetune_epochs, cache_dir=cache_dir)  # fmt: skip
        accelerator = Accelerator(cpu=device == "cpu", mixed_precision="bf16" if values.get("bf16") else "no")
        plan = plan_tofu_eval(request, eval_config)
        folder = run_dir(out, "llm-tofu")
        seed = values.get("seed", 0)
        resumed = resume_or_save_config(folder, request, run, eval_config, seed=seed, command="llm", preset=preset)
    main = accelerator.is_main_process
    if main and preset:
        typer.echo(f"preset {describe(preset)}")
    if main and resumed:
        typer.echo(f"resuming the run in {folder}", err=True)
    with progress_bar(enabled=main) as progress:
        try:
            rows, notes = run_llm_tofu(request, run, eval_config, plan, folder, accelerator, progress)
        except RuntimeError as err:  # NonFiniteLoss and friends: one line, exit 1, written results stay
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(code=1) from None
    if main:
        header = ["model", "forget quality", "model utility", "forget truth ratio", "forget prob", "forget ROUGE-L",
                  "answer loss/token"]  # fmt: skip
        print_table(header, rows, f"TOFU {eval_config.split}: before and after unlearning")
        for note in notes:
            typer.echo(note)
        typer.echo(f"wrote {folder}")


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
    out: Path | None = typer.Option(None, help="Output folder [default: RUN/relearn or runs/relearn-<time>]."),
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
        config = RelearnConfig(fraction=fraction, steps=steps, lr=lr, batch_size=batch_size, seed=seed,
                               eval_at=parse_list(eval_at, int, "--eval-at"))  # fmt: skip
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
            rows.append([label, show(fq[0]), show(fq[-1]), f"{curves['forget_Q_A_Prob'][0]:.3f}",
                         f"{curves['forget_Q_A_Prob'][-1]:.3f}", f"{curves['forget_Q_A_ROUGE'][0]:.3f}",
                         f"{curves['forget_Q_A_ROUGE'][-1]:.3f}"])  # fmt: skip
    header = ["model", "forget quality before", "after", "forget prob before", "after", "forget ROUGE before", "after"]
    print_table(
        header, rows, f"Relearning on {fraction:.0%} of {eval_config.split}, {steps} steps (lower after = more robust)"
    )
    typer.echo(f"wrote {folder}")


_TRAINER_OPTIONS = {
    "split", "beta", "margin", "margin_convention", "forget_weight", "retain_weight", "kl_positions", "lr", "epochs",
    "batch_size", "per_device_batch_size", "weight_decay", "warmup_epochs", "schedule", "optimizer", "bf16",
    "gradient_checkpointing", "lora_rank", "seed",
}  # fmt: skip


def torch_cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def results_forget_names(results: dict) -> list[str]:
    """The forget-chain names of the case with the most chains (every case of a run has the same K)."""
    first = next(iter(results["cases"].values()))
    return [c["name"] for c in first["chains"][1:]]


@contextmanager
def progress_bar(enabled: bool = True):
    """A rich progress bar; yields ``progress(description, total) -> advance(n, info=None)``, one task per phase
    (``info``, e.g. the live loss, is shown after the description)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, transient=False, disable=not enabled) as bar:

        def start(description: str, total: int) -> Callable[..., None]:
            task = bar.add_task(description, total=total)

            def advance(n: int, info: str | None = None) -> None:
                bar.update(task, advance=n, description=f"{description} {info}" if info else description)

            return advance

        yield start


def print_table(header: list[str], rows: list[list[str]], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(*header, title=title)
    for row in rows:
        table.add_row(*row)
    Console(width=None if sys.stdout.isatty() else 130).print(table)  # logs and pipes get the whole table


def main() -> None:
    app()


if __name__ == "__main__":
    main()
