"""One shipped accelerate config on one GPU (benchmarks/gpu_smoke.sh runs all three): prints one line.

1. `simnpo llm` on the built-in mini-TOFU (tiny Llama, simnpo_nll, 2 epochs, evaluated after each) under
   `accelerate launch --config_file CONFIG --num_processes 1`;
2. `simnpo eval --model RUN/simnpo_nll/model` under the same launcher: the saved model's numbers must equal the
   run's last evaluation (the save gathered the whole model, not ZeRO-3 placeholders or FSDP shards);
3. a new run folder holding only that run's epoch-2 checkpoint, run to 3 epochs: it must resume at epoch 2.

    python benchmarks/gpu_smoke.py multi_gpu|fsdp|deepspeed_zero3 WORKDIR [DEVICE]

DEVICE (default cuda) = cpu checks this script itself without a GPU (the DDP config only: accelerate refuses FSDP
and DeepSpeed on CPU).
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import time
from pathlib import Path

import simnpo.llm
from simnpo.runs import read_json

TINY = ["--bench", "tofu", "--finetune-epochs", "3", "--max-new-tokens", "16"]


def launch(config: Path, work: Path, log: str, *args: str) -> float:
    """``accelerate launch`` of the simnpo command on one GPU; seconds taken. Raises with the log's tail on failure."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config), "--num_processes", "1"]
    cmd += ["-m", "simnpo.cli", *args]
    start = time.perf_counter()
    with open(work / f"{log}.log", "w") as out:
        code = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT).returncode
    if code != 0:
        lines = (work / f"{log}.log").read_text().strip().splitlines()
        ours = [line for line in lines if line.startswith("error: ")]  # our one-line errors, else a Python one
        reason = ours or [line for line in lines if "Error: " in line and "ChildFailedError" not in line] or lines[-1:]
        raise RuntimeError(f"{log} exited {code}: {reason[0]}")
    return time.perf_counter() - start


def largest_difference(a: dict, b: dict) -> float:
    keys = [k for k, v in a.items() if isinstance(v, float) and isinstance(b.get(k), float)]
    assert keys, "no numbers in common"
    return max(abs(a[k] - b[k]) for k in keys)


def smoke(name: str, work: Path, device: str) -> str:
    config = Path(simnpo.llm.__file__).parent / "accelerate_configs" / f"{name}.yaml"
    work.mkdir(parents=True, exist_ok=True)
    cache, run, tiny = work / "cache", work / "run", [*TINY, "--device", device]
    llm = ["llm", *tiny, "--methods", "simnpo_nll", "--eval-every", "1", "--cache-dir", str(cache)]
    trained = launch(config, work, "unlearn", *llm, "--epochs", "2", "--out", str(run))
    last = read_json(run / "simnpo_nll" / "history.json")[-1]
    model = run / "simnpo_nll" / "model"
    launch(
        config,
        work,
        "reload",
        "eval",
        *TINY,
        "--model",
        str(model),
        "--cache-dir",
        str(cache),
        "--out",
        str(work / "eval"),
    )
    reloaded = largest_difference(last, read_json(work / "eval" / "summary.json")["model"])
    resumed = work / "resumed"
    shutil.copytree(run / "simnpo_nll" / "checkpoint", resumed / "simnpo_nll" / "checkpoint")
    launch(config, work, "resume", *llm, "--epochs", "3", "--out", str(resumed))
    epochs = [h["epoch"] for h in read_json(resumed / "simnpo_nll" / "history.json")]
    ok = reloaded < 1e-2 and epochs == [3]
    verdict = "ok" if ok else "MISMATCH"
    return (
        f"{name}: {verdict}: unlearned and evaluated in {trained:.0f} s; saved model re-evaluated, largest difference "
        f"{reloaded:.1e}; resumed at epoch 2, evaluated epochs {epochs}"
    )


def main() -> int:
    name, work = sys.argv[1], Path(sys.argv[2])
    device = sys.argv[3] if len(sys.argv) > 3 else "cuda"
    if name == "deepspeed_zero3" and importlib.util.find_spec("deepspeed") is None:
        print(f"{name}: skipped: deepspeed is not installed (pip install deepspeed)")
        return 0
    try:
        line = smoke(name, work, device)
    except (RuntimeError, AssertionError, OSError) as err:
        print(f"{name}: FAILED: {err}")
        return 1
    print(line)
    return 0 if ": ok:" in line else 1


if __name__ == "__main__":
    sys.exit(main())
