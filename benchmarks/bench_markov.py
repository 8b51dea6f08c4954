"""Throughput of the Markov-chain transformer against the machine's measured matrix-multiply rate.

Reports, in one run: the machine's float32 matmul throughput (GFLOP/s, 2048² square matrices), training tokens/s
(forward + backward + AdamW, batch 128 × 20, the published model), evaluation tokens/s (inference batches of 256),
and the fraction of the matmul rate each reaches, counting 6·N FLOPs per trained token and 2·N per evaluated one
(N = non-embedding parameters) plus attention.

    python benchmarks/bench_markov.py [--arch authors|standard] [--steps 60]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from simnpo.markov.data import DataConfig, case_chains, sample_data, split_tokens
from simnpo.markov.model import MarkovGPT, ModelConfig
from simnpo.markov.train import TrainConfig, forward_all, train_lm


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e9


def flops_per_token(model: MarkovGPT, seq: int) -> float:
    """Forward FLOPs per token: 2 per non-embedding weight, plus QK^T and AV over on average seq/2 keys."""
    weights = sum(p.numel() for n, p in model.named_parameters() if p.dim() == 2 and not n.startswith(("tok", "pos")))
    return 2 * weights + model.config.n_layer * 2 * 2 * model.config.d_model * seq / 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="authors", choices=["authors", "standard"])
    parser.add_argument("--steps", type=int, default=60, help="training steps of batch 128 to time")
    args = parser.parse_args()

    data = sample_data(DataConfig(case_chains("length")), seed=0)
    train = split_tokens(data, "train", [0])[: 128 * args.steps]
    test = split_tokens(data, "test", [0])
    torch.manual_seed(0)
    model = MarkovGPT(ModelConfig(arch=args.arch), 10, 20)
    peak = matmul_gflops()

    train_lm(model, train[:256], TrainConfig(epochs=1), seed=0)  # warm-up
    start = time.perf_counter()
    train_lm(model, train, TrainConfig(epochs=1), seed=0)
    train_seconds = time.perf_counter() - start
    train_tokens = len(train) * 20
    forward_all(model, test[:256])
    start = time.perf_counter()
    forward_all(model, test)
    eval_seconds = time.perf_counter() - start
    eval_tokens = len(test) * 20

    per_token = flops_per_token(model, 20)
    train_rate, eval_rate = train_tokens / train_seconds, eval_tokens / eval_seconds
    print(f"Markov GPT ({args.arch}), {torch.get_num_threads()} threads")
    print(f"  matmul peak (float32, 2048²):  {peak:8.1f} GFLOP/s")
    print(
        f"  training:   {train_rate:10.0f} tokens/s = {3 * per_token * train_rate / 1e9:6.1f} GFLOP/s, "
        f"{3 * per_token * train_rate / 1e9 / peak:.1%} of the matmul rate"
    )
    print(
        f"  evaluation: {eval_rate:10.0f} tokens/s = {per_token * eval_rate / 1e9:6.1f} GFLOP/s, "
        f"{per_token * eval_rate / 1e9 / peak:.1%} of the matmul rate"
    )
    print(f"  (per token: {np.round(per_token / 1e3, 1)} kFLOP forward)")


if __name__ == "__main__":
    main()
