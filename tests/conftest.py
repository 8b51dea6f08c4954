import os

import pytest
from typer.testing import CliRunner

# No hub lookups in tests (they retry for ~25 s before failing offline) and no display for matplotlib.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def small_runs(tmp_path_factory):
    """A tiny Markov run, a tiny `simnpo llm` run with evaluation every epoch, its relearning, and a tiny
    `simnpo llm --bench muse` run."""
    from simnpo.cli import app

    root = tmp_path_factory.mktemp("runs")
    calls = [
        [
            "markov",
            "--retain-samples",
            "200",
            "--forget-samples",
            "100",
            "--iterations",
            "3",
            "--pretrain-epochs",
            "1",
            "--no-cache",
            "--out",
            str(root / "markov"),
        ],
        [
            "llm",
            "--finetune-epochs",
            "3",
            "--epochs",
            "2",
            "--eval-every",
            "1",
            "--max-new-tokens",
            "4",
            "--cache-dir",
            str(root / "cache"),
            "--out",
            str(root / "llm"),
        ],
        ["relearn", str(root / "llm"), "--steps", "2", "--eval-at", "0,2", "--max-new-tokens", "4"],
        ["llm", "--bench", "muse", "--finetune-epochs", "2", "--epochs", "1", "--cache-dir", str(root / "muse-cache")]
        + ["--out", str(root / "muse")],
    ]
    for args in calls:
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
    return root
