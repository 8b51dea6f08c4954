"""Parity with open-unlearning's TOFU evaluator: both evaluate the same model on the same data; prints both sides'
library versions, per metric the largest per-item relative difference, whether the generations are identical, and
the items/s of each.

open-unlearning runs in its own virtual environment (its pinned transformers 4), through
``open_unlearning_tofu_eval.py``, on a copy of the model folder written the way transformers 4 reads it
(``transformers4_copy``: RoPE fields, dtype, chat template, tokenizer class). Before any metric is compared, both
sides encode and score one probe sequence (the first forget item); the tool stops with one line if the encodings
differ or the log-probabilities differ by more than ``--tolerance``: the two sides would be comparing two different
models. Not part of CI (README, "Parity with open-unlearning", says how to set it up).

    python benchmarks/parity_open_unlearning.py --open-unlearning CHECKOUT --python CHECKOUT_VENV/bin/python \\
        [--model MODEL_OR_GGUF --data TOFU_FOLDER] [--template chat-system] [--split forget10] [--protocol P]

Without --model the built-in mini-TOFU target (built and cached as `simnpo eval --bench tofu` does) is used; a
``.gguf`` file is converted once to a cached Hugging Face folder (``simnpo.llm.gguf``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from simnpo.llm.gguf import converted_folder, describe, is_gguf
from simnpo.llm.models import load_model, load_tokenizer, quiet_hugging_face
from simnpo.llm.templates import encode_pair, template_named
from simnpo.llm.tofu.builtin import ensure_model, mini_tofu
from simnpo.llm.tofu.data import load_tofu
from simnpo.llm.tofu.evaluate import PROTOCOLS, TofuEvalConfig, evaluate_tofu
from simnpo.llm.tofu.metrics import UTILITY_KEYS

DRIVER = Path(__file__).with_name("open_unlearning_tofu_eval.py")
VERSIONED = ("torch", "transformers", "tokenizers")
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


def transformers4_config(config: dict) -> dict:
    """A transformers 5 ``config.json`` as transformers 4 reads it: ``rope_parameters`` (v5) becomes ``rope_theta``
    and, for a scaled RoPE, ``rope_scaling`` (v4 ignores ``rope_parameters`` and would run θ = 10,000);
    ``dtype`` becomes ``torch_dtype``."""
    config = dict(config)
    rope = dict(config.pop("rope_parameters", None) or {})
    if "rope_theta" in rope:
        config["rope_theta"] = rope.pop("rope_theta")
    if rope and rope.get("rope_type", "default") != "default":
        config["rope_scaling"] = {**rope, "type": rope["rope_type"]}
    if "dtype" in config:
        config["torch_dtype"] = config.pop("dtype")
    return config


def transformers4_tokenizer_config(tokenizer_config: dict, chat_template: str | None) -> dict:
    """A transformers 5 ``tokenizer_config.json`` as transformers 4 reads it: a tokenizer built from a tokenizers
    object is saved as class ``TokenizersBackend``, which v4 calls ``PreTrainedTokenizerFast`` (the same
    tokenizer.json); the chat template, which v5 saves in ``chat_template.jinja``, goes back into the config
    (v4.45 reads only that)."""
    config = {k: v for k, v in tokenizer_config.items() if k != "backend"}
    if config.get("tokenizer_class") == "TokenizersBackend":
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
    if chat_template is not None and "chat_template" not in config:
        config["chat_template"] = chat_template
    return config


def transformers4_copy(model: str, folder: Path, translate_config: bool = True) -> str:
    """The model folder copied to ``folder`` as transformers 4 reads it (``translate_config=False``: its
    ``config.json`` left as transformers 5 wrote it, which transformers 4 misreads: the probe then refuses it)."""
    shutil.copytree(model, folder)
    config_file, tokenizer_file = folder / "config.json", folder / "tokenizer_config.json"
    if translate_config:
        config_file.write_text(json.dumps(transformers4_config(json.loads(config_file.read_text())), indent=2))
    if tokenizer_file.is_file():
        jinja = folder / "chat_template.jinja"
        template = jinja.read_text() if jinja.is_file() else None
        translated = transformers4_tokenizer_config(json.loads(tokenizer_file.read_text()), template)
        tokenizer_file.write_text(json.dumps(translated, indent=2))
    return str(folder)


def our_probe(model, tokenizer, template: str, pair: dict) -> dict:
    """Our encoding of the probe pair and the log-probabilities of its tokens (every token attended)."""
    input_ids, labels = encode_pair(tokenizer, template_named(template), pair["question"], pair["answer"])
    ids = torch.tensor([input_ids])
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits.float()
    logprobs = torch.log_softmax(logits[0, :-1], -1).gather(-1, ids[0, 1:, None])[:, 0]
    return {"input_ids": input_ids, "labels": labels, "logprobs": logprobs.tolist()}


def our_config_reading(model_folder: str) -> dict:
    """The config values open-unlearning's driver reports, as transformers 5 reads them here."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_folder)
    rope = getattr(config, "rope_parameters", None) or {}
    values = {key: getattr(config, key, None) for key in ("vocab_size", "hidden_size", "num_hidden_layers")}
    values |= {key: getattr(config, key, None) for key in ("num_key_value_heads", "head_dim", "rms_norm_eps")}
    values |= {"tie_word_embeddings": config.tie_word_embeddings, "rope_theta": rope.get("rope_theta")}
    return values


def probe_problems(ours: dict, theirs: dict, config: dict, tolerance: float) -> list[str]:
    """Why the two sides are not evaluating the same model on the same tokens: config values read differently, a
    different encoding of the probe pair, log-probabilities further apart than ``tolerance``."""
    problems = [
        f"{key} is {theirs['config'][key]} there, {value} here"
        for key, value in config.items()
        if value is not None and theirs["config"].get(key) is not None and theirs["config"][key] != value
    ]
    if (ours["input_ids"], ours["labels"]) != (theirs["input_ids"], theirs["labels"]):
        problems.append("the probe pair is encoded differently")
    elif (gap := float(np.max(np.abs(np.subtract(ours["logprobs"], theirs["logprobs"]))))) > tolerance:
        problems.append(f"the probe's token log-probabilities differ by up to {gap:.2e} (> {tolerance:g})")
    return problems


def run_theirs(args, mode: str, model: str, data: str, out: Path, probe: Path | None = None) -> None:
    command = [args.python, str(DRIVER), mode, args.open_unlearning, model, data, str(out), args.template, args.split]
    command += [str(args.batch_size), str(args.max_new_tokens), *([str(probe)] if probe else [])]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": ""}
    done = subprocess.run(command, cwd=args.open_unlearning, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        errors = [line for line in done.stderr.splitlines() if re.match(r"^[\w.]+(Error|Exception)\b", line)]
        errors = [line for line in errors if re.search(r"[a-z]", line.split(":", 1)[-1])]  # the first says why
        sys.exit(f"open-unlearning's {mode} failed: {errors[0] if errors else f'exit {done.returncode}'}")


def check_same_model(args, model_folder: str, copy: str, data: str, tmp: Path) -> tuple[dict, dict]:
    """Both sides encode and score the first forget item; stops the tool with one line when they differ. Returns
    both probes (open-unlearning's with its versions)."""
    pair = load_tofu(data, f"{args.split}_perturbed")[0]
    tokenizer, model = load_tokenizer(model_folder), load_model(model_folder)
    ours = our_probe(model, tokenizer, args.template, pair)
    probe_file = tmp / "probe_in.json"
    probe_file.write_text(json.dumps({**pair, "input_ids": ours["input_ids"]}))
    run_theirs(args, "probe", copy, data, tmp, probe_file)
    theirs = json.loads((tmp / "probe.json").read_text())
    problems = probe_problems(ours, theirs, our_config_reading(model_folder), args.tolerance)
    if problems:
        versions = f"transformers {theirs['versions']['transformers']} there, {metadata.version('transformers')} here"
        sys.exit(
            f"not comparing: open-unlearning reads {args.model} as another model ({versions}): {'; '.join(problems)}"
        )
    return ours, theirs


def print_table(ours: dict, theirs: dict) -> None:
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
    for side in ("forget", "holdout"):  # the Min-K% scores of privleak's two sets
        if "mia_min_k" in ours and "mia_min_k" in theirs:
            relative, _ = differences(ours["mia_min_k"][side], theirs["mia_min_k"][side])
            items = len(theirs["mia_min_k"][side]["value_by_index"])
            print(f"{'mia_min_k ' + side:<26} {items:>5} {relative:>28.2e} {'':>21}")
    if "privleak" in ours and "privleak" in theirs:
        a, b = ours["privleak"]["agg_value"], theirs["privleak"]["agg_value"]
        print(f"privleak: ours {a:.6f}, theirs {b:.6f} (difference {abs(a - b):.1e})")
    utility = abs(ours["model_utility"]["agg_value"] - theirs["model_utility"]["agg_value"])
    print(
        f"model utility: ours {ours['model_utility']['agg_value']:.6f}, theirs "
        f"{theirs['model_utility']['agg_value']:.6f} (difference {utility:.1e})"
    )


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--open-unlearning", required=True, help="a checkout of locuslab/open-unlearning")
    parser.add_argument("--python", required=True, help="the Python of open-unlearning's virtual environment")
    parser.add_argument("--model", help="model folder or .gguf file (default: the built-in mini-TOFU target)")
    parser.add_argument("--data", help="local TOFU folder (default: the built-in mini-TOFU data)")
    parser.add_argument("--template", default="llama2")
    parser.add_argument("--split", default="forget10")
    parser.add_argument("--protocol", default="open-unlearning", choices=list(PROTOCOLS), help="ours")
    parser.add_argument("--batch-size", type=int, default=32, help="open-unlearning's (ours: our defaults)")
    parser.add_argument("--max-new-tokens", type=int, default=200)
    parser.add_argument("--tolerance", type=float, default=1e-4, help="largest probe log-probability difference")
    parser.add_argument(
        "--untranslated-config",
        action="store_true",
        help="give open-unlearning config.json as transformers 5 wrote it (its RoPE θ misread): the probe refuses it",
    )
    parser.add_argument("--cache-dir", default="runs/.cache/tofu")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    quiet_hugging_face()
    if args.model is None:
        assets = mini_tofu(Path(args.cache_dir))
        args.model, args.data = str(ensure_model(assets, "target")), str(assets.data)
    folder = args.model
    if is_gguf(args.model):
        folder, path = converted_folder(args.model, announce=print)
        print(describe(folder, path))
    folder, data = str(Path(folder).resolve()), str(Path(args.data).resolve())  # theirs runs elsewhere
    # each side at its own default batch sizes (ours: 64 scored, 128 generated; open-unlearning's: 32)
    config = TofuEvalConfig(args.split, args.template, protocol=args.protocol, max_new_tokens=args.max_new_tokens)
    with tempfile.TemporaryDirectory() as tmp:
        copy = transformers4_copy(folder, Path(tmp) / "model", translate_config=not args.untranslated_config)
        our_probe_result, probe = check_same_model(args, folder, copy, data, Path(tmp))
        start = time.perf_counter()
        run_theirs(args, "eval", copy, data, Path(tmp))
        theirs = json.loads((Path(tmp) / "TOFU_EVAL.json").read_text())
        their_seconds = json.loads((Path(tmp) / "timing.json").read_text())["seconds"]
        their_wall = time.perf_counter() - start
    tokenizer, model = load_tokenizer(folder), load_model(folder)
    start = time.perf_counter()
    ours = evaluate_tofu(model, tokenizer, data, config)
    our_seconds = time.perf_counter() - start
    items = sum(len(ours[f"{key}_Q_A_Prob"]["value_by_index"]) for key in ("forget", "retain", "ra", "wf"))
    print(f"model {args.model}, data {data}, template {args.template}, {args.split}, {items} items")
    here = ", ".join(f"{name} {metadata.version(name)}" for name in VERSIONED)
    there = ", ".join(f"{name} {probe['versions'][name]}" for name in VERSIONED)
    print(f"ours: {here}, protocol {args.protocol}; open-unlearning: {there}")
    print(
        f"batches: ours {config.batch_size} scored, {config.generation_batch_size} generated; theirs {args.batch_size}"
    )
    gap = np.max(np.abs(np.subtract(our_probe_result["logprobs"], probe["logprobs"])))
    print(f"probe: the same {len(probe['input_ids'])} tokens, log-probabilities within {gap:.1e}")
    print_table(ours, theirs)
    print(
        f"items/s: ours {items / our_seconds:.2f}, open-unlearning {items / their_seconds:.2f} "
        f"({their_seconds / our_seconds:.2f}x; theirs {their_wall - their_seconds:.0f} s more to start and load)"
    )


if __name__ == "__main__":
    main()
