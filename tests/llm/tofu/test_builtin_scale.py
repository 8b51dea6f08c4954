"""The built-in mini-TOFU at its default size (about 2 minutes: two fine-tunes; `-m "not slow"` skips).

Acceptance of the TOFU issue: the target memorises its data, the retain model's forget quality against itself is
1.0, the target's is far below 0.05, and the evaluation itself is fast.
"""

import json
import time

import pytest
from typer.testing import CliRunner

from simnpo.cli import app

pytestmark = pytest.mark.slow


def test_default_builtin_tofu(tmp_path, builtin_cache):
    cache, out = builtin_cache, tmp_path / "run"
    result = CliRunner().invoke(
        app, ["eval", "--bench", "tofu", "--cache-dir", str(cache), "--out", str(tmp_path / "x")]
    )
    assert result.exit_code == 0, result.output
    start = time.perf_counter()  # models are cached now: this is the evaluation alone
    result = CliRunner().invoke(app, ["eval", "--bench", "tofu", "--cache-dir", str(cache), "--out", str(out)])
    seconds = time.perf_counter() - start
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    retain, target = summary["retain"], summary["target"]
    assert retain["forget_quality"] == 1.0
    assert target["forget_quality"] < 1e-3
    assert target["forget_answer_loss_per_token"] < 0.05 < 1.0 < retain["forget_answer_loss_per_token"]
    # the retain model writes each answer's template with the wrong facts ("The father of <another author> was a
    # miner."): about 0.5 ROUGE-L recall from the template's words alone (0.503 measured), the target 1.0
    assert target["forget_Q_A_ROUGE"] > 0.95 > 0.65 > retain["forget_Q_A_ROUGE"]
    assert abs(target["model_utility"] - retain["model_utility"]) < 0.15
    print(f"evaluation of two models took {seconds:.1f} s")  # the limit is 3 minutes


def test_default_llm_run_unlearns_with_npo_and_simnpo(tmp_path, builtin_cache):
    """`simnpo llm --bench tofu` with no options (but the cache): both methods raise forget quality far above the
    target's and keep model utility within 20 % of the target's."""
    start = time.perf_counter()
    result = CliRunner().invoke(
        app, ["llm", "--bench", "tofu", "--cache-dir", str(builtin_cache), "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    target = json.loads((tmp_path / "target" / "TOFU_SUMMARY.json").read_text())
    for method in ("npo_nll", "simnpo_nll"):
        final = json.loads((tmp_path / method / "history.json").read_text())[-1]
        assert final["forget_quality"] > 1e-3 > 1e6 * target["forget_quality"], (method, final["forget_quality"])
        assert final["model_utility"] >= 0.8 * target["model_utility"], (method, final["model_utility"])
    print(f"unlearning and evaluating both methods took {time.perf_counter() - start:.0f} s")
