"""The built-in mini-MUSE pipeline end to end: `simnpo llm --bench muse` with its defaults on a smaller mini-MUSE (10
articles per split, 40 items per set; the default 25 take about 6 minutes from nothing on 2 cores; `-m "not slow"`
skips).

Acceptance of the MUSE issue: the target's VerbMem and KnowMem on D_f are clearly above the retrain model's and its
PrivLeak is strongly negative; after SimNPO, PrivLeak moves toward 0 and D_f knowledge falls while the utility stays
above half the retrain model's; the run time is printed, not asserted.
"""

import json
import time

import pytest
from typer.testing import CliRunner

from simnpo.cli import app
from simnpo.llm.muse import benchmark, builtin
from simnpo.llm.muse.mini import MiniMuseConfig

pytestmark = pytest.mark.slow


def test_default_llm_run_on_mini_muse(tmp_path, monkeypatch):
    smaller = MiniMuseConfig(forget=10, retain1=10, retain2=10, holdout=10)
    monkeypatch.setattr(benchmark, "mini_muse", lambda cache, build: builtin.mini_muse(cache, smaller, build=build))
    start = time.perf_counter()
    args = ["llm", "--bench", "muse", "--cache-dir", str(tmp_path / "cache")]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "run")])
    seconds = time.perf_counter() - start
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    retrain, target = summary["retrain"], summary["target"]
    simnpo = json.loads((tmp_path / "run" / "simnpo_nll" / "history.json").read_text())[-1]
    assert target["verbmem_f"] > retrain["verbmem_f"] + 15
    assert target["knowmem_f"] > retrain["knowmem_f"] + 30
    assert retrain["privleak"] == 0.0 and target["privleak"] < -40
    assert simnpo["privleak"] > target["privleak"] + 10  # toward 0
    assert simnpo["knowmem_f"] < target["knowmem_f"] - 30
    assert simnpo["knowmem_r"] > 0.5 * retrain["knowmem_r"]
    print(f"simnpo llm --bench muse on 10 articles per split took {seconds:.0f} s")
