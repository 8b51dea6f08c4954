"""Tracking through accelerate's trackers: `simnpo llm --report-to tensorboard` writes, per method, every loss term,
the lr and the gradient norm per step and every table metric per evaluation, read back here from the event files;
the run's numbers are those of the same run without tracking."""

import importlib.util
import json

import pytest
from typer.testing import CliRunner

from simnpo.cli import app

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

runner = CliRunner()
TABLE = ("forget_quality", "model_utility", "forget_truth_ratio", "forget_Q_A_Prob", "forget_Q_A_ROUGE", "privleak")


def small_llm(small_runs, out, *extra):
    """The session's small `simnpo llm` run's options (tests/conftest.py), into ``out``."""
    args = ["llm", "--finetune-epochs", "3", "--epochs", "2", "--eval-every", "1", "--max-new-tokens", "4"]
    return runner.invoke(app, [*args, "--cache-dir", str(small_runs / "cache"), "--out", str(out), *extra])


def scalars(folder) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_tensorboard_holds_every_loss_term_per_step_and_every_table_metric_per_evaluation(small_runs, tmp_path):
    result = small_llm(small_runs, tmp_path / "run", "--report-to", "tensorboard")
    assert result.exit_code == 0, result.output
    for method in ("npo_nll", "simnpo_nll"):
        logged = scalars(tmp_path / "run" / "tracking" / method)
        steps = [s for s, _ in logged["loss"]]
        assert steps == list(range(1, len(steps) + 1)) and len(steps) % 2 == 0  # every step of both epochs
        for tag in ("loss/forget", "loss/retain", "lr", "grad_norm"):
            assert [s for s, _ in logged[tag]] == steps, tag
        assert logged["lr"][0][1] < logged["lr"][len(steps) // 2][1]  # the warm-up, as the schedule says
        history = json.loads((tmp_path / "run" / method / "history.json").read_text())
        for key in TABLE:
            values = logged[f"eval/{key}"]
            assert [s for s, _ in values] == [len(steps) // 2, len(steps)]  # after each epoch's last step
            assert [v for _, v in values] == pytest.approx([h[key] for h in history], rel=1e-6, abs=1e-30)
    # tracking changes nothing the run computes: the same numbers as the session's run without it
    for method in ("npo_nll", "simnpo_nll"):
        ours = json.loads((tmp_path / "run" / method / "history.json").read_text())
        theirs = json.loads((small_runs / "llm" / method / "history.json").read_text())
        assert ours == theirs


@pytest.mark.parametrize(
    "value, message",
    [("tensorbored", "unknown --report-to 'tensorbored'"), ("wandb", "needs the wandb package: pip install wandb")],
)
def test_an_unknown_or_missing_tracker_is_one_line(small_runs, tmp_path, value, message):
    if value == "wandb" and importlib.util.find_spec("wandb") is not None:
        pytest.skip("wandb is installed here")
    result = small_llm(small_runs, tmp_path / "run", "--report-to", value)
    assert result.exit_code == 2 and message in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_wandb_offline_where_installed(small_runs, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    result = small_llm(small_runs, tmp_path / "run", "--report-to", "wandb", "--epochs", "1")
    assert result.exit_code == 0, result.output
    assert any(tmp_path.rglob("*.wandb"))
