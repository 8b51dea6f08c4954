"""Peak memory and unlearning steps/s of NPO and RMU against SimNPO on the same model, measured in one run.

Each method runs in a fresh process (a ~25M-parameter Llama from a config, mini-TOFU forget10 with the retain NLL
term, batch 8, 6 steps). Goal: NPO's peak at most 1.15 × SimNPO's: NPO takes its reference log-probabilities from
the policy at step 0 and keeps no reference model; npo_kl, which must keep one, is shown for contrast, as is RMU
(layer 7 of 8, the WMDP repository's default, with its frozen copy; it trains three down-projections). On CUDA the
peak is the allocator's; on CPU the growth of the peak resident set over the process before the model was built.

    python benchmarks/bench_unlearn_memory.py [--device cpu|cuda] [--hidden 512 --layers 8]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

METHODS = ("simnpo_nll", "npo_nll", "npo_kl", "rmu")


def peak_bytes(device: str) -> int:
    if device == "cuda":
        return torch.cuda.max_memory_allocated()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_method(method: str, args) -> dict:
    from accelerate import Accelerator

    from simnpo.llm.models import TinyLlamaConfig, quiet_hugging_face, tiny_llama, train_tokenizer
    from simnpo.llm.templates import TEMPLATES
    from simnpo.llm.tofu.benchmark import encode_unlearning_data
    from simnpo.llm.tofu.mini import MiniTofuConfig, generate
    from simnpo.llm.trainer import TrainerConfig, unlearn
    from simnpo.losses import LossConfig

    quiet_hugging_face()
    rows = generate(MiniTofuConfig())
    with tempfile.TemporaryDirectory() as tmp:
        llama2 = TEMPLATES["llama2"]
        texts = [llama2.prompt_text(r["question"]) + r["answer"] for r in rows["full"]]
        tokenizer = train_tokenizer(texts, Path(tmp), vocab_size=2048)
        accelerator = Accelerator(cpu=args.device == "cpu")
        data = encode_unlearning_data(tokenizer, llama2, rows["forget10"], rows["retain90"], method, 128, seed=0)
        if args.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        before = peak_bytes(args.device) if args.device == "cuda" else _current_rss()
        size = TinyLlamaConfig(
            hidden_size=args.hidden,
            intermediate_size=args.hidden * 11 // 4,
            layers=args.layers,
            heads=args.hidden // 64,
            max_positions=256,
        )
        model = tiny_llama(size, tokenizer, seed=0)
        params = sum(p.numel() for p in model.parameters())
        loss = LossConfig(method, beta=0.5)
        config = TrainerConfig(loss, lr=1e-4, epochs=1, batch_size=8, warmup_epochs=0.0)
        data.forget = data.forget[: 8 * args.steps]
        start = time.perf_counter()
        unlearn(model, data, config, accelerator, Path(tmp) / "run")
        seconds = time.perf_counter() - start
    return {"peak_bytes": peak_bytes(args.device) - before, "steps_per_s": args.steps / seconds, "params": params}


def _current_rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--method", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.method:
        print(json.dumps(run_method(args.method, args)))
        return
    results = {}
    for method in METHODS:
        cmd = [sys.executable, __file__, *sys.argv[1:], "--method", method]
        proc = subprocess.run(cmd, check=True, capture_output=True, text=True)
        results[method] = json.loads(proc.stdout.strip().splitlines()[-1])
    base = results["simnpo_nll"]
    print(
        f"unlearning memory, {base['params'] / 1e6:.0f}M-parameter Llama on {args.device}, batch 8, {args.steps} steps"
    )
    for method, r in results.items():
        print(
            f"  {method:11s}: peak +{r['peak_bytes'] / 2**20:8.1f} MiB ({r['peak_bytes'] / base['peak_bytes']:.2f} "
            f"× SimNPO), {r['steps_per_s']:.2f} steps/s"
        )
    ratio = results["npo_nll"]["peak_bytes"] / base["peak_bytes"]
    print(f"  NPO / SimNPO peak memory: {ratio:.2f} (goal <= 1.15): {'OK' if ratio <= 1.15 else 'ABOVE GOAL'}")
    rmu = results["rmu"]
    speed = rmu["steps_per_s"] / base["steps_per_s"]
    print(f"  RMU / SimNPO: peak memory {rmu['peak_bytes'] / base['peak_bytes']:.2f}, steps/s {speed:.2f}")


if __name__ == "__main__":
    main()
