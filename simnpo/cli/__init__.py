"""The ``simnpo`` command: a typer app (``common``) on which each command module registers its commands.

Imports point one way: this package's ``__init__`` imports the command modules, which import ``common``."""

# in the order of a workflow (help lists the commands as they register): markov; eval, llm; relearn, attack; plot
from simnpo.cli import markov  # noqa: F401, I001  (each registers its commands on the app)
from simnpo.cli import llm  # noqa: F401
from simnpo.cli import relearn  # noqa: F401
from simnpo.cli import attack  # noqa: F401
from simnpo.cli import figures  # noqa: F401
from simnpo.cli.common import app


def main() -> None:
    app()
