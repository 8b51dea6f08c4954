"""Items/s of a full MUSE evaluation (VerbMem, KnowMem on D_f and D_r, PrivLeak forget + holdout) of the built-in
mini-MUSE target: batched (left-padded generation, right-padded scoring) against one item at a time, in one run,
checking both give the same metrics.

    python benchmarks/bench_muse_eval.py [--cache-dir runs/.cache/muse]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from simnpo.llm.models import load_model, load_tokenizer, quiet_hugging_face
from simnpo.llm.muse.builtin import DEFAULT_CACHE, ensure_model, mini_muse
from simnpo.llm.muse.evaluate import MuseEvalConfig, evaluate_muse, muse_summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    args = parser.parse_args()
    quiet_hugging_face()
    assets = mini_muse(args.cache_dir)
    target = ensure_model(assets, "target")
    model, tokenizer = load_model(target), load_tokenizer(target)
    configs = {"batched": MuseEvalConfig(batch_size=32), "one at a time": MuseEvalConfig(batch_size=1)}
    results, seconds = {}, {}
    for name, config in configs.items():
        start = time.perf_counter()
        results[name] = evaluate_muse(model, tokenizer, str(assets.data), config, retrain_auc=0.5)
        seconds[name] = time.perf_counter() - start
    batched = results["batched"]
    items = sum(len(batched[k]["value_by_index"]) for k in ("verbmem_f", "knowmem_f", "knowmem_r"))
    items += len(batched["privleak"]["forget_scores"]) + len(batched["privleak"]["holdout_scores"])
    a, b = muse_summary(batched), muse_summary(results["one at a time"])
    numbers = [k for k, v in a.items() if isinstance(v, float)]
    worst = max(abs(a[k] - b[k]) for k in numbers)
    print(f"MUSE evaluation of the built-in target, {items} items (128 + 32-token generations, Min-K% scoring)")
    for name in configs:
        print(f"  {name:14s}: {seconds[name]:6.1f} s, {items / seconds[name]:7.1f} items/s")
    print(f"  speed-up: {seconds['one at a time'] / seconds['batched']:.1f}x")
    print(f"  same metrics: largest difference {worst:.2e} over {len(numbers)} numbers")
    if worst >= 1e-3:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
