"""Every notebook's code cells run top to bottom (in one namespace, as a kernel would)."""

import json
import os
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

NOTEBOOKS = sorted((Path(__file__).parents[2] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch, capsys, small_runs):
    monkeypatch.chdir(tmp_path)  # anything a notebook writes stays out of the source tree
    monkeypatch.setenv("SIMNPO_RUNS", os.pathsep.join(str(small_runs / r) for r in ("markov", "llm", "muse", "wmdp")))
    cells = json.loads(path.read_text())["cells"]
    namespace: dict = {}
    for cell in cells:
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]), f"{path.name}", "exec"), namespace)
    plt.close("all")
    out = capsys.readouterr().out
    assert "False" not in out and "none found" not in out
    if path.name == "analysis.ipynb":
        for figure in (
            "markov_length",
            "tofu_quality_utility",
            "tofu_epochs",
            "relearn",
            "muse_privleak_utility",
            "wmdp_forget_utility",
        ):
            assert figure in out


def test_there_are_notebooks():
    assert NOTEBOOKS
