"""Items/s of a full TOFU evaluation (forget10 + retain + real authors + world facts) of the built-in target model:
our batched evaluator against a naive one-item-at-a-time baseline (every answer scored alone, every answer generated
alone), in one run, checking both give the same metrics.

    python benchmarks/bench_tofu_eval.py [--cache-dir runs/.cache/tofu]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from simnpo.llm.models import load_model, load_tokenizer, quiet_hugging_face
from simnpo.llm.tofu.builtin import DEFAULT_CACHE, ensure_model, mini_tofu
from simnpo.llm.tofu.evaluate import TofuEvalConfig, evaluate_tofu, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    args = parser.parse_args()
    quiet_hugging_face()
    assets = mini_tofu(args.cache_dir)
    target = ensure_model(assets, "target")
    model, tokenizer = load_model(target), load_tokenizer(target)
    configs = {"batched": TofuEvalConfig(), "one at a time": TofuEvalConfig(batch_size=1, generation_batch_size=1)}
    results, seconds = {}, {}
    for name, config in configs.items():
        start = time.perf_counter()
        results[name] = evaluate_tofu(model, tokenizer, str(assets.data), config)
        seconds[name] = time.perf_counter() - start
    items = sum(
        len(results["batched"][k]["value_by_index"])
        for k in ("forget_Q_A_Prob", "retain_Q_A_Prob", "ra_Q_A_Prob", "wf_Q_A_Prob")
    )
    a, b = summary(results["batched"]), summary(results["one at a time"])
    numbers = [k for k, v in a.items() if isinstance(v, float)]
    worst = max(abs(a[k] - b[k]) for k in numbers)
    print(f"TOFU evaluation of the built-in target, {items} items")
    for name in configs:
        print(f"  {name:14s}: {seconds[name]:6.1f} s, {items / seconds[name]:7.1f} items/s")
    print(f"  speed-up: {seconds['one at a time'] / seconds['batched']:.1f}x")
    print(
        f"  same metrics: largest difference {worst:.2e} over {len(numbers)} numbers "
        f"({'OK' if worst < 1e-4 else 'DIFFERENT'})"
    )
    if not np.isfinite(worst) or worst >= 1e-4:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
