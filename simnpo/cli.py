"""The ``simnpo`` command. Each subcommand parses options into a frozen config, makes a run folder, saves the
config, and hands over to the package; a user error ends with one line on stderr and exit code 2."""

from __future__ import annotations

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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
