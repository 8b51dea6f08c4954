"""Run folders: config.json contents, atomic writes, finding the latest run, one writer per folder."""

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from simnpo import runs
from simnpo.cli import app


@dataclass(frozen=True)
class DataConfig:
    chains: int = 3
    path: Path = Path("data")


@dataclass(frozen=True)
class TrainConfig:
    lr: float = 5e-4
    betas: tuple = (0.1, 1.0)


def test_save_config_records_configs_seed_versions_and_command(tmp_path):
    configs = {runs.EXPERIMENT: DataConfig(), runs.PRETRAINING: TrainConfig(lr=1e-3)}
    path = runs.save_config(tmp_path, configs, seed=42, command="markov")
    saved = json.loads(path.read_text())
    assert path == tmp_path / "config.json"
    assert saved["configs"] == {  # keyed by section names, whatever the classes are called
        "experiment": {"chains": 3, "path": "data"},
        "pretraining": {"lr": 1e-3, "betas": [0.1, 1.0]},
    }
    assert saved["seed"] == 42 and saved["command"] == "markov"
    assert saved["versions"]["torch"] not in ("", "not installed")
    assert saved["versions"]["simnpo"] not in ("", "not installed")
    assert saved["versions"]["python"].count(".") == 2


def test_save_config_keeps_argv(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["simnpo", "weights", "--betas", "1"])
    saved = runs.read_json(runs.save_config(tmp_path, {runs.PRETRAINING: TrainConfig()}))
    assert saved["argv"] == ["simnpo", "weights", "--betas", "1"]


def test_write_json_is_atomic_and_leaves_no_temporary_files(tmp_path):
    target = tmp_path / "results.json"
    runs.write_json(target, {"kl": np.float32(0.5), "curve": np.arange(3)})
    assert runs.read_json(target) == {"kl": 0.5, "curve": [0, 1, 2]}
    with pytest.raises(TypeError):
        runs.write_json(target, {"bad": object()})  # fails while serialising: the old file stays whole
    assert runs.read_json(target)["curve"] == [0, 1, 2]
    assert os.listdir(tmp_path) == ["results.json"]
    assert target.stat().st_mode & 0o044 == 0o044  # readable by others as with open(), not mkstemp's 0600


def test_atomic_path_removes_the_temporary_file_when_writing_fails(tmp_path):
    target = tmp_path / "figure.png"
    with pytest.raises(RuntimeError):
        with runs.atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_new_run_dirs_are_distinct_and_latest_run_finds_the_newest(tmp_path):
    assert runs.latest_run(tmp_path) is None
    first = runs.new_run_dir("markov", tmp_path)
    second = runs.new_run_dir("markov", tmp_path)
    other = runs.new_run_dir("weights", tmp_path)
    assert len({first, second, other}) == 3 and first.name.startswith("markov-")
    for i, folder in enumerate([first, second, other]):
        runs.save_config(folder, {runs.PRETRAINING: TrainConfig()})
        os.utime(folder / "config.json", ns=(10**18 + i, 10**18 + i))
    assert runs.latest_run(tmp_path) == other
    assert runs.latest_run(tmp_path, "markov") == second
    runs.new_run_dir("markov", tmp_path)  # a folder without config.json is not a run yet
    assert runs.latest_run(tmp_path, "markov") == second


def test_run_dir_uses_the_named_folder_or_makes_a_new_one(tmp_path):
    assert runs.run_dir(tmp_path / "a" / "b", "weights") == tmp_path / "a" / "b"
    assert (tmp_path / "a" / "b").is_dir()
    made = runs.run_dir(None, "weights", root=tmp_path / "root")
    assert made.parent == tmp_path / "root" and made.name.startswith("weights-")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is not a folder"):
        runs.run_dir(tmp_path / "file", "weights")


def test_a_corrupt_json_file_is_one_line_naming_it(tmp_path):
    (tmp_path / "results.json").write_text('{"cases": ')
    with pytest.raises(ValueError, match=r"results.json is not valid JSON \(Expecting value"):
        runs.read_json(tmp_path / "results.json")


TINY_MARKOV = ["--retain-samples", "200", "--forget-samples", "100", "--steps", "3", "--pretrain-epochs", "1"]


def sleeper() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def write_lock(folder, pid: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    lock = {"pid": pid, "host": socket.gethostname(), "started": "2026-12-05T00:00:00+00:00"}
    (folder / runs.LOCK_FILE).write_text(json.dumps(lock))


def test_a_folder_locked_by_a_live_process_is_refused_and_a_dead_ones_lock_taken_over(tmp_path, capsys):
    other = sleeper()
    try:
        write_lock(tmp_path, other.pid)
        with pytest.raises(ValueError, match=f"in use by process {other.pid} on .* since 2026-12-05"):
            runs.run_dir(tmp_path, "x")
    finally:
        other.kill()
        other.wait()
    assert runs.run_dir(tmp_path, "x") == tmp_path  # the process is gone: its lock is taken over
    assert f"locked by process {other.pid}, which is gone" in capsys.readouterr().err
    assert json.loads((tmp_path / runs.LOCK_FILE).read_text())["pid"] == os.getpid()
    assert runs.run_dir(tmp_path, "x") == tmp_path  # this process already holds it
    runs.release_locks()
    assert not (tmp_path / runs.LOCK_FILE).exists()


def test_a_command_frees_its_folder_when_it_ends(tmp_path):
    result = CliRunner().invoke(app, ["weights", "--lengths", "5", "--betas", "1", "--out", str(tmp_path)])
    assert result.exit_code == 0 and (tmp_path / "weights.png").is_file()
    assert not (tmp_path / runs.LOCK_FILE).exists()


def test_under_a_launcher_only_the_main_process_locks(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    runs.run_dir(tmp_path, "x")
    assert not (tmp_path / runs.LOCK_FILE).exists()


def test_a_second_command_on_a_run_folder_in_use_is_one_line_and_the_first_finishes(tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "simnpo.cli", "markov", *TINY_MARKOV, "--no-cache", "--out", str(out)]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for _ in range(600):  # the first command holds the folder once it has made it
            if (out / runs.LOCK_FILE).is_file() or first.poll() is not None:
                break
            time.sleep(0.1)
        assert first.poll() is None, "the first command ended before the second could start"
        second = CliRunner().invoke(app, ["markov", *TINY_MARKOV, "--no-cache", "--out", str(out)])
        assert second.exit_code == 2 and f"{out} is in use by process {first.pid}" in second.output
        assert len(second.output.strip().splitlines()) == 1
    finally:
        output, _ = first.communicate(timeout=600)
    assert first.returncode == 0, output
    assert (out / "results.json").is_file() and not (out / runs.LOCK_FILE).exists()  # released at exit
    assert json.loads((out / "config.json").read_text())["argv"][1:] == command[3:]  # the first run's own
