"""Run by tests/llm/test_distributed.py under `accelerate launch` on two processes (asserted): `simnpo ARGS…`,
with, when the first argument is ``--nan-on-process=R``, the loss made NaN on process R alone from its second
micro-step on (as if its batch had blown up), the other processes' losses left finite."""

import os
import sys

import torch

import simnpo.llm.trainer as trainer
from simnpo.cli import main


def nan_on(process: int) -> None:
    original, calls = trainer.unlearning_loss, []

    def unlearning_loss(inputs, config, retain_weight=None):
        loss, parts = original(inputs, config, retain_weight)
        calls.append(1)
        if int(os.environ["RANK"]) == process and len(calls) >= 2:
            print(f"process {process}: NaN injected", file=sys.stderr, flush=True)
            loss = loss * torch.tensor(float("nan"))
        return loss, parts

    trainer.unlearning_loss = unlearning_loss


if __name__ == "__main__":
    assert os.environ.get("WORLD_SIZE") == "2", os.environ.get("WORLD_SIZE")  # the test's premise
    if sys.argv[1].startswith("--nan-on-process="):
        nan_on(int(sys.argv.pop(1).split("=")[1]))
    sys.argv[0] = "simnpo"
    main()
