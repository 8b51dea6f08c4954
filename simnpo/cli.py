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
    out: Path | None = typer.Option(None, help="Output folder (default: a new runs/weights-<time>)."),
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
    block_size: int | None = typer.Option(None, help="States per chain block (default: S // K)."),
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


@app.command()
def plot(
    runs: list[Path] = typer.Argument(..., help="Run folders of simnpo markov, llm, eval or relearn."),
    kind: str | None = typer.Option(None, help="Figure kinds, comma-separated (default: every one supported)."),
    out: Path | None = typer.Option(None, help="Output folder (default: a new runs/plot-<time>)."),
) -> None:
    """Draw the comparative figures the given runs support (PNG and PDF) and list what was written."""
    from simnpo.analysis.plots import select, write_figures
    from simnpo.runs import run_dir

    with user_errors():
        selected = select(runs, parse_list(kind, str, "--kind") if kind else None)
        folder = run_dir(out, "plot")
    paths = write_figures(selected, folder)
    for path in paths:
        typer.echo(f"wrote {path}")


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


# the LLM commands (eval, llm, relearn) live in their own file and register themselves on `app`
from simnpo import cli_llm  # noqa: E402, F401


def main() -> None:
    app()


if __name__ == "__main__":
    # run as a module, this file is a second copy of simnpo.cli; the commands register on the imported one
    from simnpo.cli import main as registered_main

    registered_main()
