"""Run by tests/llm/test_distributed.py under `accelerate launch`: a TOFU evaluation of a model sharded with torch's
FSDP 2 (``fully_shard`` of every decoder layer and the root) across the processes, through ``evaluation_view``:
every forward gathers parameters from all processes, so generation must keep them stepping together. (accelerate
refuses FSDP without a GPU; torch's FSDP 2 runs on CPU with gloo.) Arguments: MODEL_DIR DATA_DIR OUT."""

import sys
from pathlib import Path

import torch
from accelerate import Accelerator
from torch.distributed.fsdp import fully_shard

from simnpo.llm.distributed import evaluation_view, is_sharded, synced_generation
from simnpo.llm.models import load_model, load_tokenizer
from simnpo.llm.tofu.evaluate import TofuEvalConfig, evaluate_tofu
from simnpo.runs import write_json


def main() -> None:
    model_dir, data_dir, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    torch.set_num_threads(1)
    accelerator = Accelerator(cpu=True)
    assert accelerator.num_processes == 2, accelerator.num_processes  # the test's premise
    model, tokenizer = load_model(model_dir), load_tokenizer(model_dir)
    for layer in model.model.layers:
        fully_shard(layer)
    fully_shard(model)
    assert is_sharded(model) and synced_generation(model)
    with evaluation_view(model, accelerator) as view:
        results = evaluate_tofu(
            view,
            tokenizer,
            data_dir,
            TofuEvalConfig(max_new_tokens=24, generation_batch_size=1),
            accelerator=accelerator,
        )
    if accelerator.is_main_process:
        write_json(out / "TOFU_EVAL.json", results)


if __name__ == "__main__":
    main()
