"""Run by tests/llm/test_distributed.py under `accelerate launch`: a few unlearning steps of a tiny model built from
a seed, the final weights saved with `save_model`, then the TOFU evaluation (and the MUSE evaluation when asked)
shared across processes. One argument, a JSON object: tokenizer, data, out, per_device, processes (asserted), and
optionally muse (a mini-MUSE folder) and kill_in_checkpoint (an epoch: process 1 dies in the middle of saving that
epoch's checkpoint, after writing its part and before the folder is swapped in)."""

import json
import os
import sys
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import gather_object

from simnpo.llm.distributed import save_model
from simnpo.llm.models import TinyLlamaConfig, load_tokenizer, tiny_llama
from simnpo.llm.muse.evaluate import MuseEvalConfig, evaluate_muse
from simnpo.llm.templates import TEMPLATES
from simnpo.llm.tofu.benchmark import encode_unlearning_data
from simnpo.llm.tofu.data import load_tofu
from simnpo.llm.tofu.evaluate import TofuEvalConfig, evaluate_tofu
from simnpo.llm.trainer import TrainerConfig, unlearn
from simnpo.losses import LossConfig
from simnpo.runs import write_json


def die_in_checkpoint(epoch: int) -> None:
    """Process 1 exits (as if killed) right after writing its part of epoch ``epoch``'s checkpoint."""
    saves = []
    original = Accelerator.save_state

    def save_state(self, output_dir=None, **kwargs):
        saves.append(output_dir)
        result = original(self, output_dir, **kwargs)
        if len(saves) == epoch and self.process_index == 1:
            os._exit(1)
        return result

    Accelerator.save_state = save_state


def main() -> None:
    args = json.loads(sys.argv[1])
    out = Path(args["out"])
    torch.set_num_threads(1)
    accelerator = Accelerator(cpu=True)
    assert accelerator.num_processes == args["processes"], accelerator.num_processes  # the test's premise
    if args.get("kill_in_checkpoint"):
        die_in_checkpoint(args["kill_in_checkpoint"])
    tokenizer = load_tokenizer(args["tokenizer"])
    model = tiny_llama(TinyLlamaConfig(hidden_size=32, intermediate_size=64, layers=2, heads=2), tokenizer, seed=0)
    rows = load_tofu(args["data"], "forget10")[:16], load_tofu(args["data"], "retain90")[:32]
    data = encode_unlearning_data(tokenizer, TEMPLATES["llama2"], *rows, "simnpo_nll", 128, seed=0)
    config = TrainerConfig(
        loss=LossConfig("simnpo_nll", beta=2.5),
        lr=5e-3,
        epochs=3,
        batch_size=8,
        per_device_batch_size=args["per_device"],
        warmup_epochs=0.0,
        weight_decay=0.0,
    )
    evaluated = []
    final = unlearn(model, data, config, accelerator, out / "run", lambda m, epoch: evaluated.append(epoch), 1)
    save_model(final, accelerator, out / "model", tokenizer)
    ranks = gather_object([accelerator.process_index])
    # the evaluator shares the items out across processes and gathers them; only the main process writes
    with torch.no_grad():
        view = accelerator.unwrap_model(final)
        results = evaluate_tofu(
            view, tokenizer, args["data"], TofuEvalConfig(max_new_tokens=4), accelerator=accelerator
        )
        if args.get("muse"):
            config = MuseEvalConfig(verbmem_tokens=6, knowmem_tokens=4, batch_size=3)
            muse = evaluate_muse(view, tokenizer, args["muse"], config, retrain_auc=0.5, accelerator=accelerator)
    if accelerator.is_main_process:
        torch.save(view.state_dict(), out / "weights.pt")
        write_json(out / "TOFU_EVAL.json", results)
        write_json(out / "ran.json", {"ranks": ranks, "evaluated_epochs": evaluated})
        if args.get("muse"):
            write_json(out / "MUSE_EVAL.json", muse)


if __name__ == "__main__":
    main()
