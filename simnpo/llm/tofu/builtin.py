"""The built-in mini-TOFU on disk: data, tokenizer, and the fine-tuned target and retain models, cached.

Everything lives in ``cache/<hash>/`` where the hash covers every setting that determines it, so a second run
reuses the models and a changed setting builds new ones. The target is fine-tuned on every author plus the
general-knowledge sets (real authors, world facts: our stand-in for what a pretrained model already knows); a
retain model on the retain authors of one split plus the same general knowledge.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from simnpo.llm.finetune import BuiltinAssets, FinetuneConfig, build_tiny_model, builtin_assets
from simnpo.llm.models import TinyLlamaConfig, load_tokenizer, train_tokenizer
from simnpo.llm.templates import Template, template_named
from simnpo.llm.tofu.data import FORGET_SPLITS, encode_qa, load_tofu
from simnpo.llm.tofu.mini import MiniTofuConfig, generate, write_mini_tofu
from simnpo.runs import read_json

DEFAULT_CACHE = Path("runs/.cache/tofu")
GENERAL_KNOWLEDGE = ("real_authors", "world_facts")
BUILTIN_TEMPLATE = "llama2"  # TOFU's Llama-2 tags: the built-in models are trained and scored as TOFU's checkpoints


MiniTofu = BuiltinAssets


def mini_tofu(
    cache: Path = DEFAULT_CACHE,
    data_config: MiniTofuConfig = MiniTofuConfig(),
    model_config: TinyLlamaConfig = TinyLlamaConfig(),
    finetune_config: FinetuneConfig = FinetuneConfig(),
    template: Template = template_named(BUILTIN_TEMPLATE),
) -> MiniTofu:
    """Data and tokenizer of mini-TOFU (made on first use); models come from ``ensure_model``. The tokenizer learns
    the text as ``template`` joins it (a tag template: the built-in tokenizer has no chat template)."""
    assert not template.chat, "the built-in tokenizer has no chat template"

    def write(stage: Path) -> None:
        write_mini_tofu(data_config, stage / "data")
        rows = generate(data_config)
        texts = [
            template.prompt_text(r["question"]) + r["answer"]
            for name in ("full", "real_authors", "world_facts", "holdout10")
            for r in rows[name]
        ]
        texts += [
            a
            for r in rows["forget10_perturbed"] + rows["retain_perturbed"]
            for a in [r["paraphrased_answer"], *r["perturbed_answer"]]
        ]
        train_tokenizer(texts, stage / "tokenizer", model_config.vocab_size)

    configs = {"data": data_config, "model": model_config, "finetune": finetune_config, "template": template}
    return builtin_assets(cache, configs, write)


def training_sets(name: str) -> tuple[str, ...]:
    """The TOFU configurations a built-in model is fine-tuned on."""
    if name == "target":
        return ("full", *GENERAL_KNOWLEDGE)
    if name in FORGET_SPLITS.values():
        return (name, *GENERAL_KNOWLEDGE)
    raise ValueError(f"unknown built-in model {name!r}; use target or one of {', '.join(FORGET_SPLITS.values())}")


def ensure_model(assets: MiniTofu, name: str, progress: Callable | None = None) -> Path:
    """Fine-tune the built-in ``target`` or ``retainNN`` model unless it is cached; returns its folder. ``progress``
    (``progress(description, total) -> advance``) shows the fine-tuning."""
    folder = assets.model(name)
    if (folder / "training.json").is_file():
        return folder
    configs = read_json(assets.root / "configs.json")
    model_cfg, ft_cfg = TinyLlamaConfig(**configs["model"]), FinetuneConfig(**configs["finetune"])
    template = Template(**configs["template"])
    tokenizer = load_tokenizer(assets.tokenizer)
    rows = [r for config in training_sets(name) for r in load_tofu(assets.data, config)]
    data = encode_qa(tokenizer, template, [r["question"] for r in rows], [r["answer"] for r in rows])
    info = {"trained_on": training_sets(name)}
    return build_tiny_model(folder, tokenizer, data, model_cfg, ft_cfg, info, progress, f"fine-tune built-in {name}")
