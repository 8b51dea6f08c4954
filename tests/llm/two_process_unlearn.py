"""Run by tests/llm/test_distributed.py under `accelerate launch`: a few unlearning steps of a tiny model built from
a seed, saving the final weights from the main process, then the TOFU evaluation (and the MUSE evaluation on
MUSE_DIR when given) shared across processes. Arguments: TOKENIZER_DIR DATA_DIR OUT PER_DEVICE_BATCH [MUSE_DIR]."""

import sys
from pathlib import Path

import torch
from accelerate import Accelerator

from simnpo.llm.models import TinyLlamaConfig, load_tokenizer, tiny_llama
from simnpo.llm.muse.evaluate import MuseEvalConfig, evaluate_muse
from simnpo.llm.templates import TEMPLATES
from simnpo.llm.tofu.benchmark import encode_unlearning_data
from simnpo.llm.tofu.data import load_tofu
from simnpo.llm.tofu.evaluate import TofuEvalConfig, evaluate_tofu
from simnpo.llm.trainer import TrainerConfig, unlearn
from simnpo.losses import LossConfig
from simnpo.runs import write_json

LLAMA2 = TEMPLATES["llama2"]


def main() -> None:
    tokenizer_dir, data_dir, out, per_device = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(1)
    accelerator = Accelerator(cpu=True)
    tokenizer = load_tokenizer(tokenizer_dir)
    model = tiny_llama(TinyLlamaConfig(hidden_size=32, intermediate_size=64, layers=2, heads=2), tokenizer, seed=0)
    rows = load_tofu(data_dir, "forget10")[:16], load_tofu(data_dir, "retain90")[:32]
    data = encode_unlearning_data(tokenizer, LLAMA2, *rows, "simnpo", 128, seed=0)
    config = TrainerConfig(
        loss=LossConfig("simnpo", beta=2.5),
        lr=5e-3,
        epochs=2,
        batch_size=8,
        per_device_batch_size=per_device,
        warmup_epochs=0.0,
        weight_decay=0.0,
    )
    final = unlearn(model, data, config, accelerator, out / "run")
    # the evaluator shares the items out across processes and gathers them; only the main process writes
    results = evaluate_tofu(final, tokenizer, data_dir, TofuEvalConfig(max_new_tokens=4), accelerator=accelerator)
    if accelerator.is_main_process:
        torch.save(final.state_dict(), out / "weights.pt")
        write_json(out / "TOFU_EVAL.json", results)
    if len(sys.argv) > 5:
        config = MuseEvalConfig(verbmem_tokens=6, knowmem_tokens=4, batch_size=3)
        muse = evaluate_muse(final, tokenizer, sys.argv[5], config, retrain_auc=0.5, accelerator=accelerator)
        if accelerator.is_main_process:
            write_json(out / "MUSE_EVAL.json", muse)


if __name__ == "__main__":
    main()
