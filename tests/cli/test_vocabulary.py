"""One vocabulary: every command's shared options have the name, default and help docs/cli.md gives them, the
commands are listed in a workflow's order, and `simnpo llm --help` groups its options into panels."""

import re
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from simnpo.cli import app

DOCS = Path(__file__).parents[2] / "docs" / "cli.md"


def shared_table() -> list[dict]:
    rows = []
    for line in DOCS.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`--"):
            option, default, text, commands = cells
            rows.append(
                {
                    "name": option.strip("`").removeprefix("--").replace("-", "_"),
                    "default": default.strip("`"),
                    "help": text,
                    "commands": [c.strip() for c in commands.split(",")],
                }
            )
    return rows


def commands() -> dict[str, object]:
    """Every command of the app by its path (``attack quantize``)."""
    out = {}

    def walk(command, path):
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                walk(sub, [*path, name])
        else:
            out[" ".join(path)] = command

    walk(get_command(app), [])
    return out


ROWS = shared_table()


def test_the_table_is_read():
    assert {row["name"] for row in ROWS} >= {"device", "config", "torch_dtype", "pad_token", "max_new_tokens"}


@pytest.mark.parametrize("row", ROWS, ids=[r["name"] for r in ROWS])
def test_every_command_says_a_shared_option_the_same_way(row):
    found = commands()
    for path in row["commands"]:
        params = {p.name: p for p in found[path].params}
        name = "config_file" if row["name"] == "config" else row["name"]
        assert name in params, f"{path} has no --{row['name']}"
        param = params[name]
        default = "" if param.default is None else str(param.default)
        assert (default, param.help) == (row["default"], row["help"]), path
    others = [p for p, c in found.items() if p not in row["commands"] and row["name"] in {x.name for x in c.params}]
    assert not others, f"--{row['name']} is also on {others}: add them to docs/cli.md or rename it there"


def test_commands_are_listed_in_a_workflows_order():
    text = CliRunner().invoke(app, ["--help"], terminal_width=200).output
    names = ("markov", "eval", "llm", "relearn", "plot", "attack")  # typer lists a group of commands after the others
    positions = [re.search(rf"│ {name}\s", text).start() for name in names]
    assert positions == sorted(positions)


def test_llm_help_groups_its_options_into_panels():
    text = CliRunner().invoke(app, ["llm", "--help"], terminal_width=200).output
    panels = ["Benchmark", "Method and loss", "Optimisation", "Evaluation", "Hardware", "Output"]
    positions = [text.index(f"╭─ {panel} ") for panel in panels]
    assert positions == sorted(positions)
    ungrouped = text.split("╭─ Options ")[1].split("╰")[0] if "╭─ Options " in text else ""
    assert re.findall(r"--[a-z-]+", ungrouped) == ["--help"]  # every other option in its panel
