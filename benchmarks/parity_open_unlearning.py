"""Parity with open-unlearning's TOFU evaluator: both evaluate the same model on the same data; prints, per metric,
the largest per-item relative difference, whether the generations are identical, and the items/s of each.

open-unlearning runs in its own virtual environment (its pinned transformers), through
``open_unlearning_tofu_eval.py`` with its hub paths pointed at the local TOFU folder. Not part of CI (README,
"Parity with open-unlearning", says how to set it up).

    python benchmarks/parity_open_unlearning.py --open-unlearning CHECKOUT --python CHECKOUT_VENV/bin/python \\
        [--model MODEL --data TOFU_FOLDER] [--template llama2] [--split forget10]

Without --model the built-in mini-TOFU target (built and cached as `simnpo eval --bench tofu` does) is used.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from simnpo.llm.models import load_model, load_tokenizer, quiet_hugging_face
from simnpo.llm.tofu.builtin import ensure_model, mini_tofu
from simnpo.llm.tofu.evaluate import TofuEvalConfig, evaluate_tofu
from simnpo.llm.tofu.metrics import UTILITY_KEYS

DRIVER = Path(__file__).with_name("open_unlearning_tofu_eval.py")
# compared relatively; avg_loss (a log-probability, often near 0) absolutely: |Δ avg_loss| is the relative
# difference of the probability it gives
NUMBERS = ("prob", "score", "rougeL_recall", "rouge1_recall", "rougeL_f1")
COMPARED = (
    "forget_Q_A_Prob",
    "forget_Q_A_PARA_Prob",
    "forget_Q_A_PERT_Prob",
    "forget_truth_ratio",
    "forget_Q_A_ROUGE",
    *UTILITY_KEYS,
    "retain_Q_A_PARA_Prob",
    "retain_Q_A_PERT_Prob",
    "exact_memorization",
    "extraction_strength",
)


def differences(ours: dict, theirs: dict) -> tuple[float, float]:
    """The largest |ours - theirs| / |theirs| of every number of every item both hold, and the largest
    |Δ avg_loss| (nan where there is none)."""
    relative, loss = [np.nan], [np.nan]
    for index, theirs_item in theirs["value_by_index"].items():
        ours_item = ours["value_by_index"][str(index)]
        for key in (*NUMBERS, "avg_loss"):
            if key in theirs_item and key in ours_item and theirs_item[key] is not None:
                a, b = np.asarray(ours_item[key], float), np.asarray(theirs_item[key], float)
                if key == "avg_loss":
                    loss += np.abs(a - b).ravel().tolist()
                else:
                    relative += (np.abs(a - b) / np.maximum(np.abs(b), 1e-30)).ravel().tolist()
    return np.nanmax(relative) if len(relative) > 1 else np.nan, np.nanmax(loss) if len(loss) > 1 else np.nan


def run_ours(model: str, data: str, config: TofuEvalConfig) -> tuple[dict, float]:
    tokenizer, loaded = load_tokenizer(model), load_model(model)
    start = time.perf_counter()
    results = evaluate_tofu(loaded, tokenizer, data, config)
    return results, time.perf_counter() - start


def older_transformers_copy(model: str, folder: Path) -> str:
    """The model folder as transformers 4 reads it: transformers 5 saves a tokenizer built from a tokenizers object
    as class ``TokenizersBackend``, which open-unlearning's pinned transformers 4.45 calls
    ``PreTrainedTokenizerFast`` (the same tokenizer.json)."""
    shutil.copytree(model, folder)
    config_file = folder / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    if config.get("tokenizer_class") == "TokenizersBackend":
        config_file.write_text(json.dumps({**config, "tokenizer_class": "PreTrainedTokenizerFast"}))
    return str(folder)


def run_theirs(args, model: str, data: str, out: Path) -> tuple[dict, float]:
    model = older_transformers_copy(model, out / "model")
    command = [args.python, str(DRIVER), args.open_unlearning, model, data, str(out), args.template, args.split]
    command += [str(args.batch_size), str(args.max_new_tokens)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": ""}
    done = subprocess.run(command, cwd=args.open_unlearning, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"open-unlearning's evaluator failed:\n{done.stderr[-3000:]}")
    results = json.loads((out / "TOFU_EVAL.json").read_text())
    return results, json.loads((out / "timing.json").read_text())["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--open-unlearning", required=True, help="a checkout of locuslab/open-unlearning")
    parser.add_argument("--python", required=True, help="the Python of open-unlearning's virtual environment")
    parser.add_argument("--model", help="model folder (default: the built-in mini-TOFU target)")
    parser.add_argument("--data", help="local TOFU folder (default: the built-in mini-TOFU data)")
    parser.add_argument("--template", default="llama2")
    parser.add_argument("--split", default="forget10")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=200)
    parser.add_argument("--cache-dir", default="runs/.cache/tofu")
    args = parser.parse_args()
    quiet_hugging_face()
    if args.model is None:
        assets = mini_tofu(Path(args.cache_dir))
        args.model, args.data = str(ensure_model(assets, "target")), str(assets.data)
    args.model, args.data = str(Path(args.model).resolve()), str(Path(args.data).resolve())  # theirs runs elsewhere
    config = TofuEvalConfig(
        split=args.split,
        template=args.template,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        generation_batch_size=args.batch_size,
    )
    with tempfile.TemporaryDirectory() as tmp:
        theirs, their_seconds = run_theirs(args, args.model, args.data, Path(tmp))
    ours, our_seconds = run_ours(args.model, args.data, config)
    items = sum(len(ours[key]["value_by_index"]) for key in ("forget_Q_A_Prob", "retain_Q_A_Prob", "ra_Q_A_Prob"))
    items += len(ours["wf_Q_A_Prob"]["value_by_index"])
    print(f"model {args.model}, data {args.data}, template {args.template}, {args.split}, {items} items")
    print(f"{'metric':<26} {'items':>5} {'largest relative difference':>28} {'largest |Δ avg_loss|':>21}  generations")
    for key in COMPARED:
        if key not in theirs or key not in ours:
            print(f"{key:<26} not in both results")
            continue
        relative, loss = differences(ours[key], theirs[key])
        same = ""
        if key.endswith("ROUGE"):
            pairs = [
                (ours[key]["value_by_index"][i]["generation"], v["generation"])
                for i, v in theirs[key]["value_by_index"].items()
            ]
            same = f"{sum(a == b for a, b in pairs)}/{len(pairs)} identical"
        print(f"{key:<26} {len(theirs[key]['value_by_index']):>5} {relative:>28.2e} {loss:>21.2e}  {same}")
    utility = abs(ours["model_utility"]["agg_value"] - theirs["model_utility"]["agg_value"])
    print(
        f"model utility: ours {ours['model_utility']['agg_value']:.6f}, theirs "
        f"{theirs['model_utility']['agg_value']:.6f} (difference {utility:.1e})"
    )
    print(
        f"items/s: ours {items / our_seconds:.1f}, open-unlearning {items / their_seconds:.1f} "
        f"({their_seconds / our_seconds:.2f}x)"
    )


if __name__ == "__main__":
    main()
