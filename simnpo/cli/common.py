"""What every ``simnpo`` command shares: the typer app, one-line user errors, list options, progress bars and
tables. Command modules register on ``app``; this module imports none of them."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import typer

import simnpo


def _command_done(*args, **kwargs) -> None:
    from simnpo.runs import release_locks

    release_locks()  # the command's run folder is free for the next one


app = typer.Typer(
    name="simnpo",
    result_callback=_command_done,
    help="LLM unlearning with SimNPO, NPO and friends (arXiv 2410.07163).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
T = TypeVar("T")


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn a ValueError (bad input) into one line on stderr and exit code 2, never a traceback; under a launcher of
    several processes every process exits, the main one prints."""
    try:
        yield
    except ValueError as err:
        echo_error(err)
        raise typer.Exit(code=2) from None


def echo_error(err: Exception) -> None:
    """``error: …`` on stderr, once: from the main process only when a launcher started several (RANK set)."""
    if os.environ.get("RANK", "0") == "0":
        typer.echo(f"error: {err}", err=True)


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

    table = Table(title=title)
    table.add_column(header[0], no_wrap=True)  # the row's name (e.g. "simnpo_nll best, epoch 3") stays whole
    for name in header[1:]:
        table.add_column(name)
    for row in rows:
        table.add_row(*row)
    Console(width=None if sys.stdout.isatty() else 130).print(table)  # logs and pipes get the whole table
