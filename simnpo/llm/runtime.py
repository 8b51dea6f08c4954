"""What a ``simnpo eval`` or ``simnpo llm`` run starts with: its accelerator, its run folder (chosen once for every
process) and, when asked for, experiment tracking through accelerate's trackers (TensorBoard, W&B, MLflow).

Tracking (``--report-to``): one tracker run per unlearned method, named after it, holding the method's
configuration as hyperparameters; per optimizer step every loss term (``loss``, ``loss/forget``, ``loss/retain``:
means over the global batch and the processes), the learning rate (``lr``) and the gradient norm before clipping
(``grad_norm``); per evaluation every number of the benchmark's summary (``eval/forget_quality``, …) at the step the
evaluation follows. TensorBoard and MLflow write into ``RUN/tracking``; W&B honours ``WANDB_MODE=offline``.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

REPORT_TO = {"none": None, "tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}  # name -> its package
TRACKING_FOLDER = "tracking"


def check_report_to(name: str) -> str:
    """A tracker name of ``REPORT_TO`` whose package is installed; one line otherwise."""
    if name not in REPORT_TO:
        raise ValueError(f"unknown --report-to {name!r}; use one of {', '.join(REPORT_TO)}")
    package = REPORT_TO[name]
    if package is not None and importlib.util.find_spec(package) is None:
        raise ValueError(f"--report-to {name} needs the {package} package: pip install {package}")
    return name


def resolve_device(device: str) -> str:
    """``--device``: ``auto`` is the GPU when there is one; cpu or cuda (cuda:N) as given, when there is one."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"--device must be auto, cpu or cuda, got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {device} but this machine has no GPU; give --device cpu or auto")
    return device


def make_accelerator(device: str, bf16: bool):
    """The run's accelerator: on CPU when asked or when ``auto`` finds no GPU, bf16 autocast when a method asks for
    it, else the launcher's mixed-precision setting (``accelerate launch --mixed_precision`` or its config file),
    never overridden."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    # a command earlier in this Python process (tests, a notebook) may have fixed another precision in accelerate's
    # per-process state; accelerate has no public reset, and transformers' own TrainingArguments._setup_devices and
    # Trainer reset it the same way. The process group (PartialState) is kept.
    AcceleratorState._reset_state()
    # accelerate joins the launcher's CPU processes only with cpu=True; without it each would run alone
    cpu = resolve_device(device) == "cpu"
    try:
        accelerator = Accelerator(cpu=cpu, mixed_precision="bf16" if bf16 else None)
    except RuntimeError as err:  # e.g. an FSDP config on a machine without GPUs
        raise ValueError(f"accelerate could not start this launch ({str(err).strip().splitlines()[0]})") from None
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if accelerator.num_processes != launched:
        raise ValueError(
            f"the launcher started {launched} processes but accelerate joined {accelerator.num_processes}; "
            f"on a machine without GPUs give --device cpu or auto (not {device})"
        )
    return accelerator


def start_run(accelerator, out: Path | None, name: str, configs: dict, resume: bool, seed=None, **extra):
    """The run folder, chosen and given its config.json by the main process alone and shared with every process
    (one folder, whatever the number of processes), and whether an existing run resumes (``resume``: the same
    configuration in ``out`` resumes, another is refused). Tracking (``extra["report_to"]``, saved with the run)
    writes into it."""
    from simnpo.llm.distributed import on_main
    from simnpo.runs import resume_or_save_config, run_dir, save_config

    extra |= {"processes": accelerator.num_processes, "mixed_precision": accelerator.mixed_precision}

    def choose() -> tuple[Path, bool]:
        folder = run_dir(out, name)
        if resume:
            return folder, resume_or_save_config(folder, configs, seed=seed, **extra)
        save_config(folder, configs, seed=seed, **extra)
        return folder, False

    folder, resumed = on_main(accelerator, choose)
    start_tracking(accelerator, Path(folder), extra.get("report_to", "none"))
    return folder, resumed


def start_tracking(accelerator, folder: Path, name: str) -> None:
    """Point accelerate's trackers (``name`` of ``REPORT_TO``) at the run folder (``RUN/tracking``); none for
    ``none``."""
    from accelerate.utils import LoggerType

    accelerator.log_with = [] if name == "none" else [LoggerType(name)]
    accelerator.project_configuration.logging_dir = str(folder / TRACKING_FOLDER)


def tracking(accelerator) -> bool:
    """Whether this run logs to trackers (the same answer on every process: collective steps depend on it)."""
    return bool(getattr(accelerator, "log_with", None))


@contextmanager
def tracked_run(accelerator, name: str, hyperparameters: Callable[[], dict]):
    """One tracker run called ``name`` (a method) with its ``hyperparameters()`` for as long as the block runs."""
    if not tracking(accelerator):
        yield
        return
    plain = {k: v if isinstance(v, bool | int | float | str) else str(v) for k, v in hyperparameters().items()}
    accelerator.init_trackers(name, config=plain)  # TensorBoard's hparams take numbers and text only
    try:
        yield
    finally:
        if accelerator.is_main_process:
            for tracker in accelerator.trackers:
                tracker.finish()
            accelerator.trackers.clear()


def log_numbers(accelerator, values: dict, step: int, prefix: str = "") -> None:
    """The numbers among ``values`` (not None, not text) logged at ``step``, their names after ``prefix``."""
    numbers = {f"{prefix}{k}": float(v) for k, v in values.items() if isinstance(v, int | float)}
    if numbers and tracking(accelerator):
        accelerator.log(numbers, step=step)
