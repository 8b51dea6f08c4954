"""The ``simnpo`` command: a typer app (``common``) on which each command module registers its commands.

Imports point one way: this package's ``__init__`` imports the command modules, which import ``common``."""

from simnpo.cli import attack, figures, llm, markov, relearn  # noqa: F401  (each registers its commands on the app)
from simnpo.cli.common import app


def main() -> None:
    app()
