"""GPU check: a few SimNPO+NLL (and NPO+NLL) unlearning steps of a ~1B-parameter Llama built from a config, in
bf16 through the same trainer as `simnpo llm`. Reports tokens/s, model FLOP utilisation (6·N FLOPs per trained
token against the GPU's dense bf16 peak, --peak-tflops) and peak memory. Needs a CUDA GPU; takes a few minutes.

    python benchmarks/gpu_check.py [--peak-tflops 989] [--steps 10] [--batch 8] [--seq 512]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=512, help="tokens per forget and per retain sequence")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak (H100/H200 SXM: 989)")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("gpu_check needs a CUDA GPU")
    from accelerate import Accelerator
    from transformers import LlamaConfig, LlamaForCausalLM

    from simnpo.llm.data import EncodedBatch
    from simnpo.llm.trainer import TrainerConfig, UnlearningData, unlearn
    from simnpo.losses import LossConfig

    config = LlamaConfig(
        vocab_size=32000,
        hidden_size=2048,
        intermediate_size=5632,
        num_hidden_layers=16,
        num_attention_heads=16,
        num_key_value_heads=16,
        max_position_embeddings=args.seq,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    params = sum(p.numel() for p in model.parameters())
    n = args.batch * args.steps

    def random_batch(count: int) -> EncodedBatch:
        ids = torch.randint(3, 32000, (count, args.seq))
        labels = ids.clone()
        labels[:, : args.seq // 4] = -100  # a prompt
        return EncodedBatch(ids, torch.ones_like(ids), labels, torch.full((count,), ids.shape[1]))

    data = UnlearningData(random_batch(n), random_batch(n), None)
    print(f"Llama of {params / 1e9:.2f} B parameters, bf16, batch {args.batch} × {args.seq} tokens (+ retain)")
    for method in ("simnpo_nll", "npo_nll"):
        accelerator = Accelerator(mixed_precision="bf16")
        torch.cuda.reset_peak_memory_stats()
        trainer = TrainerConfig(
            loss=LossConfig(method, beta=2.5),
            lr=1e-5,
            epochs=1,
            batch_size=args.batch,
            warmup_epochs=0.0,
            gradient_checkpointing=True,
        )
        with tempfile.TemporaryDirectory() as tmp:
            torch.cuda.synchronize()
            start = time.perf_counter()
            unlearn(model, data, trainer, accelerator, Path(tmp), save_checkpoints=False)
            torch.cuda.synchronize()
            seconds = time.perf_counter() - start
        tokens = 2 * n * args.seq  # forget and retain sequences, forward and backward
        rate = tokens / seconds
        mfu = 6 * params * rate / (args.peak_tflops * 1e12)
        print(
            f"  {method:11s}: {rate:9.0f} tokens/s, MFU {mfu:.1%}, peak memory "
            f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB ({seconds:.1f} s incl. the reference pass)"
        )


if __name__ == "__main__":
    main()
