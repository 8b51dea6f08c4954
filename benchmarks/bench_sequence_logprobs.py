"""Speed and peak memory of ``simnpo.losses.sequence_logprobs`` against the naive log_softmax + gather.

Both variants score the same logits (forward and backward) in fresh processes of one run; the report gives the
ratios ours / naive and checks that both give the same log-probabilities. Memory is reported twice: what the
forward pass keeps alive for the backward pass (what adds to a model's saved activations in training), and the
peak over forward + backward. On CUDA these come from the allocator; on CPU from the process's resident set.

    python benchmarks/bench_sequence_logprobs.py [--batch 4 --seq 512 --vocab 32000 --device cpu]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import psutil
import torch
import torch.nn.functional as F

from simnpo.losses import sequence_logprobs


def naive_sequence_logprobs(logits, labels):
    logp = F.log_softmax(logits[:, :-1].float(), dim=-1)
    labels = labels[:, 1:]
    mask = labels != -100
    picked = logp.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (picked * mask).sum(-1), mask.sum(-1)


def peak_bytes(device: str) -> int:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def current_bytes(device: str) -> int:
    if device.startswith("cuda"):
        return torch.cuda.memory_allocated()
    return psutil.Process().memory_info().rss


def run_variant(variant: str, args) -> dict:
    torch.manual_seed(0)
    fn = sequence_logprobs if variant == "ours" else naive_sequence_logprobs
    logits = torch.randn(args.batch, args.seq, args.vocab, device=args.device, dtype=getattr(torch, args.dtype))
    labels = torch.randint(0, args.vocab, (args.batch, args.seq), device=args.device)
    labels[:, : args.seq // 4] = -100  # a masked prompt
    logits.requires_grad_(True)
    fn(logits[:1, :8], labels[:1, :8])[0].sum().backward()  # warm-up
    logits.grad = None
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    resident = current_bytes(args.device)
    logps, _ = fn(logits, labels)
    held = current_bytes(args.device) - resident
    logps.sum().backward()
    logits.grad = None
    start = time.perf_counter()
    for _ in range(args.repeats):
        logps, _ = fn(logits, labels)
        logps.sum().backward()
        logits.grad = None
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / args.repeats
    peak = peak_bytes(args.device) - resident
    return {"seconds": seconds, "held_bytes": held, "peak_extra_bytes": peak, "logps": logps.tolist()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=512)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variant", choices=["ours", "naive"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.variant, args)))
        return
    results = {}
    for variant in ("ours", "naive"):
        cmd = [sys.executable, __file__, *sys.argv[1:], "--variant", variant]
        results[variant] = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    ours, naive = results["ours"], results["naive"]
    same = torch.allclose(torch.tensor(ours["logps"]), torch.tensor(naive["logps"]), rtol=1e-4, atol=1e-2)
    print(f"sequence_logprobs, batch {args.batch} × seq {args.seq} × vocab {args.vocab}, {args.dtype} on {args.device}")
    for name, r in results.items():
        print(
            f"  {name:5s}: {r['seconds'] * 1e3:8.1f} ms forward+backward, "
            f"held for backward {r['held_bytes'] / 2**20:7.1f} MiB, peak +{r['peak_extra_bytes'] / 2**20:7.1f} MiB"
        )
    print(f"  time ratio ours/naive: {ours['seconds'] / naive['seconds']:.2f}")
    print(f"  held-for-backward ratio ours/naive: {ours['held_bytes'] / max(naive['held_bytes'], 1):.2f}")
    print(f"  peak-memory ratio ours/naive: {ours['peak_extra_bytes'] / max(naive['peak_extra_bytes'], 1):.2f}")
    print(f"  same log-probabilities: {same}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
