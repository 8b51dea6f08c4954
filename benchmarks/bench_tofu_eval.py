"""Items/s of a full TOFU evaluation (forget + retain + real authors + world facts) and where its time goes: the
scoring of every answer (against one pass over each item's prompt) and the greedy generations, each measured alone,
then the whole evaluation; against a naive one-item-at-a-time baseline (every answer scored alone, every answer
generated alone), in one run, checking both give the same metrics.

    python benchmarks/bench_tofu_eval.py [--cache-dir runs/.cache/tofu]          # the built-in target, forget10
    python benchmarks/bench_tofu_eval.py --model SmolLM2-135M-Instruct.Q4_1.gguf --split forget01 [--no-baseline]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from simnpo.llm.gguf import converted_folder, is_gguf
from simnpo.llm.models import load_model, load_tokenizer, quiet_hugging_face
from simnpo.llm.templates import detect_template
from simnpo.llm.tofu.builtin import DEFAULT_CACHE, ensure_model, mini_tofu
from simnpo.llm.tofu.data import load_tofu
from simnpo.llm.tofu.evaluate import SETS, TofuEvalConfig, evaluate_tofu, generate_answers, item_scores, summary


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def parts(model, tokenizer, data: str, config: TofuEvalConfig) -> tuple[float, float]:
    """Seconds spent scoring every set's answers, and generating every set's answers."""
    sets = {name: load_tofu(data, hub or f"{config.split}_perturbed") for name, (hub, _, _) in SETS.items()}
    start = time.perf_counter()
    for name, rows in sets.items():
        item_scores(model, tokenizer, rows, SETS[name][2], config)
    scoring = time.perf_counter() - start
    questions = [r["question"] for rows in sets.values() for r in rows]
    return scoring, timed(lambda: generate_answers(model, tokenizer, questions, config))[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--model", help="a model folder or .gguf file (default: the built-in target)")
    parser.add_argument("--data", help="a local TOFU folder (default: the built-in mini-TOFU)")
    parser.add_argument("--split", default="forget10")
    parser.add_argument("--no-baseline", action="store_true", help="skip the one-item-at-a-time evaluation")
    args = parser.parse_args()
    quiet_hugging_face()
    assets = mini_tofu(args.cache_dir)
    folder = args.model or ensure_model(assets, "target")
    if is_gguf(folder):
        folder, _ = converted_folder(folder)
    model, tokenizer = load_model(folder), load_tokenizer(folder)
    data = args.data or str(assets.data)
    template = "llama2" if args.model is None else detect_template(tokenizer, model.config.model_type)[0]
    config = TofuEvalConfig(args.split, template)
    configs = {"batched": config}
    if not args.no_baseline:
        configs["one at a time"] = TofuEvalConfig(args.split, template, batch_size=1, generation_batch_size=1)
    scoring, generation = parts(model, tokenizer, data, config)
    results, seconds = {}, {}
    for name, settings in configs.items():
        results[name], seconds[name] = timed(lambda settings=settings: evaluate_tofu(model, tokenizer, data, settings))
    items = sum(len(results["batched"][f"{k}_Q_A_Prob"]["value_by_index"]) for k in ("forget", "retain", "ra", "wf"))
    print(f"TOFU evaluation of {args.model or 'the built-in target'} ({template}), {args.split}, {items} items")
    print(
        f"  batched parts: scoring {scoring:.1f} s, generation {generation:.1f} s (batches {config.batch_size} / "
        f"{config.generation_batch_size})"
    )
    for name in configs:
        print(f"  {name:14s}: {seconds[name]:6.1f} s, {items / seconds[name]:7.2f} items/s")
    if args.no_baseline:
        return
    print(f"  speed-up: {seconds['one at a time'] / seconds['batched']:.1f}x")
    a, b = summary(results["batched"]), summary(results["one at a time"])
    numbers = [k for k, v in a.items() if isinstance(v, float)]
    worst = max(abs(a[k] - b[k]) for k in numbers)
    same = "OK" if worst < 1e-4 else "DIFFERENT"
    print(f"  same metrics: largest difference {worst:.2e} over {len(numbers)} numbers ({same})")
    if not np.isfinite(worst) or worst >= 1e-4:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
