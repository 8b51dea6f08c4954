"""Run folders: one folder per run with its full configuration, and result files written atomically.

Every command writes through these helpers, so a run folder always holds ``config.json`` (the frozen dataclass
configs, seed, package versions, command line) beside its results, and a killed run never leaves a half-written
file: each file is written to a temporary name in the same folder and renamed into place.
"""

from __future__ import annotations

import atexit
import dataclasses
import hashlib
import json
import os
import platform
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

DEFAULT_ROOT = Path("runs")

# Every file name a run folder holds, defined once (the analysis reads what the commands write).
CONFIG_FILE = "config.json"
LOCK_FILE = ".simnpo.lock"  # the one writer of a run folder (``lock_run_folder``)
SUMMARY_FILE = "summary.json"  # the summary of every evaluated model of an `eval` or `llm` run
HISTORY_FILE = "history.json"  # one summary per evaluation point of an unlearned method
MARKOV_RESULTS_FILE = "results.json"
RELEARN_FILE = "relearn.json"  # relearning curves

# The sections of config.json, named independently of the classes they hold.
REQUEST, RUN, EVALUATION, TEMPLATE, RELEARN = "request", "run", "evaluation", "template", "relearn"
QUANTIZE = "quantize"
EXPERIMENT, MODEL, PRETRAINING, UNLEARNING, WEIGHTS = "experiment", "model", "pretraining", "unlearning", "weights"
SWEEP = "sweep"
_VERSIONED = ("simnpo", "torch", "numpy", "scipy", "transformers", "accelerate", "datasets", "tokenizers")


def evaluation_file(method_folder: Path | str, epoch: int, results_file: str) -> Path:
    """Where ``simnpo llm`` writes a method's evaluation after ``epoch``: ``METHOD/evals/epochN/<results file>``."""
    return Path(method_folder) / "evals" / f"epoch{epoch}" / results_file


def package_versions() -> dict[str, str]:
    """Python, platform and the versions of the packages a result depends on."""
    versions = {"python": platform.python_version(), "platform": platform.platform()}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def new_run_dir(name: str, root: Path | str = DEFAULT_ROOT) -> Path:
    """Create and return a fresh folder ``root/name-YYYYmmdd-HHMMSS`` (suffixed -2, -3 … if taken)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    stem = f"{name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    for i in range(1, 1000):
        path = root / (stem if i == 1 else f"{stem}-{i}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a new run folder under {root}")


def run_dir(out: Path | str | None, name: str, root: Path | str = DEFAULT_ROOT) -> Path:
    """The folder a command writes to: ``out`` when the user named one (created if needed), else a new one; this
    process is its one writer until it exits (``lock_run_folder``)."""
    folder = new_run_dir(name, root) if out is None else writable_folder(Path(out))
    note = lock_run_folder(folder)
    if note is not None:
        print(note, file=sys.stderr)
    return folder


def writable_folder(out: Path) -> Path:
    """``out``, made if needed, once a file can be written in it."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"output path {out} exists and is not a folder; give a folder with --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=out).close()
    except OSError as err:
        raise ValueError(
            f"cannot write to output folder {out} ({err.strerror}); give a writable folder with --out"
        ) from None
    return out


def lock_run_folder(folder: Path) -> str | None:
    """Make this process the one writer of ``folder`` until it exits: ``LOCK_FILE`` holds its pid, host and start,
    created atomically, removed at exit. A lock of a live process is a user error; one of a process of this host that
    is gone (a killed run) is taken over, and the note saying so returned. Under a launcher of several processes the
    main one (RANK 0) holds it for all; a lock this process already holds is kept (a command run twice in one
    process, as tests do)."""
    if os.environ.get("RANK", "0") != "0":
        return None
    path, note = Path(folder) / LOCK_FILE, None
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner = _lock_owner(path)
            if _mine(owner):
                return note
            if owner is None or owner.get("host") != socket.gethostname() or _alive(owner.get("pid")):
                who = "another process" if owner is None else f"process {owner.get('pid')} on {owner.get('host')}"
                since = f" since {owner['started']}" if owner and "started" in owner else ""
                raise ValueError(
                    f"{folder} is in use by {who}{since}; wait for it to finish or give another --out "
                    f"(if that run is dead, delete {path})"
                ) from None
            path.unlink(missing_ok=True)
            note = f"note: {folder} was locked by process {owner.get('pid')}, which is gone; this run takes it over"
            continue
        with os.fdopen(fd, "w") as file:
            json.dump({**_me(), "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}, file)
        if not _HELD:
            atexit.register(release_locks)
        _HELD.add(path)
        return note


_HELD: set[Path] = set()  # the lock files this process holds


def release_locks() -> None:
    """Remove every lock this process holds: at exit, and after each command (several run in one process in tests
    and notebooks)."""
    for path in list(_HELD):
        if _mine(_lock_owner(path)):
            path.unlink(missing_ok=True)
        _HELD.discard(path)


def _me() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname()}


def _mine(owner: dict | None) -> bool:
    """Whether a lock's ``owner`` is this process."""
    return owner is not None and {key: owner.get(key) for key in _me()} == _me()


def _lock_owner(path: Path) -> dict | None:
    try:
        owner = json.loads(path.read_text())
    except (OSError, ValueError):  # being written this instant, or unreadable
        return None
    return owner if isinstance(owner, dict) else None


def _alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, TypeError, ValueError):  # a live process of another user, or no pid to check
        return True
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``, on error remove it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f"{path.suffix}.tmp")
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; results should read like any other file
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):  # numpy arrays and scalars, torch tensors
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def json_text(obj: Any) -> str:
    """``obj`` as indented JSON, configs (dataclasses), paths, arrays and tensors included: what every result file and
    ``--dry-run`` hold."""
    return json.dumps(obj, indent=2, default=_jsonable)


def write_json(path: Path | str, obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically; serialisation fails before the file is touched."""
    text = json_text(obj)
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text + "\n")
            f.flush()
            os.fsync(f.fileno())
    return Path(path)


def read_json(path: Path | str) -> Any:
    """The JSON of ``path``; a file that is not valid JSON is a user error naming it."""
    with open(path) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON ({err}); rerun the command that wrote it") from None


def save_config(folder: Path | str, configs: dict[str, Any], seed: Any = None, **extra: Any) -> Path:
    """Write ``folder/config.json``: each frozen dataclass config under its section name (REQUEST, RUN, …), seed,
    versions, argv. ``extra`` holds any other fields worth keeping (e.g. the name of the command)."""
    payload = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "argv": sys.argv,
        "seed": seed,
        "configs": {name: dataclasses.asdict(c) for name, c in configs.items()},
        "versions": package_versions(),
        **extra,
    }
    return write_json(Path(folder) / CONFIG_FILE, payload)


def resume_or_save_config(folder: Path | str, configs: dict[str, Any], seed: Any = None, **extra: Any) -> bool:
    """Save ``config.json``, or, when the folder already holds one with the same configs, keep it and return True
    (the caller resumes, skipping what is already written). A different configuration is a user error."""
    path = Path(folder) / CONFIG_FILE
    if path.is_file():
        saved = read_json(path)
        wanted = json.loads(json_text({name: dataclasses.asdict(c) for name, c in configs.items()}))
        if saved.get("configs") != wanted or saved.get("seed") != json.loads(json.dumps(seed)):
            raise ValueError(f"{folder} holds a run with a different configuration; give a new folder with --out")
        return True
    save_config(folder, configs, seed=seed, **extra)
    return False


def read_config(folder: Path | str) -> dict:
    """``folder/config.json``: its sections (``configs``), seed, versions, command and the options given."""
    return read_json(Path(folder) / CONFIG_FILE)


def latest_run(root: Path | str = DEFAULT_ROOT, name: str | None = None) -> Path | None:
    """The most recently configured run folder under ``root`` (whose folder name starts with ``name``), or None."""
    root = Path(root)
    if not root.is_dir():
        return None
    runs = [
        p
        for p in root.iterdir()
        if (p / CONFIG_FILE).is_file() and (name is None or p.name.startswith(f"{name}-") or p.name == name)
    ]
    return max(runs, key=lambda p: ((p / CONFIG_FILE).stat().st_mtime_ns, p.name), default=None)


def cache_key(**parts) -> str:
    """A short stable hash of everything that determines a trained model."""
    text = json.dumps(
        parts, sort_keys=True, default=lambda o: dataclasses.asdict(o) if hasattr(o, "__dataclass_fields__") else str(o)
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class staged_folder:
    """Build a folder under a temporary name beside it and rename it into place only when complete, so a killed
    build never leaves a half-made folder where a finished one is expected. What the folder already holds is
    copied in first and kept."""

    def __init__(self, folder: Path | str):
        self.folder = Path(folder)

    def __enter__(self) -> Path:
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(dir=self.folder.parent, prefix=f".{self.folder.name}."))
        if self.folder.is_dir():
            shutil.copytree(self.folder, self.tmp, dirs_exist_ok=True)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            if self.folder.exists():
                shutil.rmtree(self.folder)
            self.tmp.rename(self.folder)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)
