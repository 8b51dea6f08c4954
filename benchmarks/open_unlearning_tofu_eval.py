"""Run open-unlearning's own TOFU code on a model and a local TOFU folder; used by parity_open_unlearning.py.

Runs with open-unlearning's Python (its own virtual environment), not ours, and imports nothing of simnpo. Its hub
paths (``locuslab/TOFU``) are pointed at the local folder by replacing its ``load_hf_dataset``; the model config of
the prompt template supplies its tags, with the model path, dtype and device overridden. Two modes:

- ``probe``: load the model and tokenizer as open-unlearning does, encode the probe's question/answer pair with its
  ``preprocess_chat_instance``, score the probe's token ids (every token attended), and write ``OUT/probe.json``
  with the ids, labels, log-probabilities, the library versions and what the model's config reads as;
- ``eval``: run its TOFU evaluator, writing ``OUT/TOFU_EVAL.json`` and ``OUT/timing.json``.

    python open_unlearning_tofu_eval.py MODE CHECKOUT MODEL FOLDER OUT TEMPLATE SPLIT BATCH_SIZE MAX_NEW_TOKENS [PROBE]
"""

import json
import sys
import time
from importlib import metadata
from pathlib import Path

# our template names -> open-unlearning's model config that holds the same template arguments
MODEL_CONFIGS = {
    "llama2": "Llama-2-7b-chat-hf",
    "phi": "phi-1_5",
    "chat": "gemma-7b-it",
    "chat-system": "Qwen2.5-1.5B-Instruct",
    "llama3": "Llama-3.2-1B-Instruct",
}
METRICS = ("forget_Q_A_Prob", "forget_Q_A_ROUGE", "forget_Truth_Ratio", "model_utility", "exact_memorization")
METRICS += ("extraction_strength", "privleak")  # privleak: its pre-computed mia_min_k is kept in the results
# config attributes that decide what the model computes, reported for the parity tool to compare
CONFIG_KEYS = ("rope_theta", "rope_scaling", "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads")
CONFIG_KEYS += ("num_key_value_heads", "head_dim", "rms_norm_eps", "tie_word_embeddings", "max_position_embeddings")


def compose(checkout, model, folder, out, template, split, batch_size, max_new_tokens):
    sys.path.insert(0, str(Path(checkout) / "src"))
    import importlib

    import datasets
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    def local_dataset(path, name=None, split="train", **kwargs):  # locuslab/TOFU -> FOLDER/NAME.json
        return datasets.load_dataset("json", data_files=str(Path(folder) / f"{name}.json"), split="train")

    for module in ("data.utils", "data.qa"):  # open-unlearning's own `data` package
        importlib.import_module(module).load_hf_dataset = local_dataset
    overrides = [
        "experiment=eval/tofu/default",
        f"model={MODEL_CONFIGS[template]}",
        f"model.model_args.pretrained_model_name_or_path={model}",
        f"model.tokenizer_args.pretrained_model_name_or_path={model}",
        "model.model_args.attn_implementation=sdpa",
        "model.model_args.torch_dtype=float32",
        "model.model_args.device_map=cpu",
        f"forget_split={split}",
        f"holdout_split={split.replace('forget', 'holdout')}",
        f"eval.tofu.batch_size={batch_size}",
        f"eval.tofu.output_dir={out}",
        "task_name=parity",
    ]
    metric_configs = [f"+eval/tofu_metrics@eval.tofu.metrics.{m}={m}" for m in ("exact_memorization",)]
    with initialize_config_dir(config_dir=str(Path(checkout) / "configs"), version_base=None):
        cfg = compose(config_name="eval.yaml", overrides=overrides + metric_configs)
    with open_dict(cfg):
        for name in list(cfg.eval.tofu.metrics):
            if name not in METRICS and name != "forget_truth_ratio":
                del cfg.eval.tofu.metrics[name]
        for name in cfg.eval.tofu.metrics:
            generation = cfg.eval.tofu.metrics[name].get("generation_args")
            if generation is not None:
                generation.max_new_tokens = int(max_new_tokens)
        for pre in cfg.eval.tofu.metrics.model_utility.pre_compute.values():
            if pre.get("generation_args") is not None:
                pre.generation_args.max_new_tokens = int(max_new_tokens)
    return cfg


def probe(cfg, model_obj, tokenizer, probe_file, out):
    import torch
    from data.utils import preprocess_chat_instance

    pair = json.loads(Path(probe_file).read_text())
    # lists, as its QADataset passes them (with two strings it compares their lengths)
    item = preprocess_chat_instance(tokenizer, cfg.model.template_args, [pair["question"]], [pair["answer"]], 512)
    ids = torch.tensor([pair["input_ids"]])
    with torch.no_grad():
        logits = model_obj(input_ids=ids, attention_mask=torch.ones_like(ids)).logits.float()
    logprobs = torch.log_softmax(logits[0, :-1], -1).gather(-1, ids[0, 1:, None])[:, 0]
    config = model_obj.config
    result = {
        "input_ids": item["input_ids"].tolist(),
        "labels": item["labels"].tolist(),
        "logprobs": logprobs.tolist(),
        "versions": {name: metadata.version(name) for name in ("torch", "transformers", "tokenizers")},
        "config": {key: getattr(config, key, None) for key in CONFIG_KEYS},
        "tokenizer": {
            "class": type(tokenizer).__name__,
            "bos": tokenizer.bos_token_id,
            "eos": tokenizer.eos_token_id,
            "pad": tokenizer.pad_token_id,
            "chat_template": tokenizer.chat_template,
        },
    }
    Path(out, "probe.json").write_text(json.dumps(result))


def main() -> None:
    mode, checkout, model, folder, out, template, split, batch_size, max_new_tokens = sys.argv[1:10]
    cfg = compose(checkout, model, folder, out, template, split, batch_size, max_new_tokens)
    from evals import get_evaluators
    from model import get_model

    model_obj, tokenizer = get_model(cfg.model)
    if mode == "probe":
        return probe(cfg, model_obj, tokenizer, sys.argv[10], out)
    evaluator = get_evaluators(cfg.eval)["tofu"]
    start = time.perf_counter()
    evaluator.evaluate(model=model_obj, tokenizer=tokenizer, template_args=cfg.model.template_args, overwrite=True)
    seconds = time.perf_counter() - start
    Path(out, "timing.json").write_text(json.dumps({"seconds": seconds}))


if __name__ == "__main__":
    main()
