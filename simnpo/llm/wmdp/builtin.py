"""The built-in mini-WMDP on disk: data, tokenizer and the fine-tuned target model, cached in
``cache/mini-<hash>/`` where the hash covers every setting that determines them.

The target reads every document of both corpora (the hazardous forget corpus and the general retain corpus) as a
sequence of its own, EOS appended, for ``finetune.epochs`` epochs: measured, 80 epochs take it to 1.0 accuracy on
both question sets (30 epochs: 0.45 / 0.37), about 90 s on 2 CPU cores.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from simnpo.llm.data import pad_right
from simnpo.llm.finetune import BuiltinAssets, FinetuneConfig, build_tiny_model, builtin_assets
from simnpo.llm.models import TinyLlamaConfig, load_tokenizer, train_tokenizer
from simnpo.llm.wmdp.data import load_corpus
from simnpo.llm.wmdp.mini import MiniWmdpConfig, generate, write_mini_wmdp
from simnpo.runs import read_json

DEFAULT_CACHE = Path("runs/.cache/wmdp")
CORPORA = ("bio-forget-corpus", "bio-retain-corpus")
MODEL = TinyLlamaConfig()


@dataclass(frozen=True)
class BuiltinWmdpConfig:
    finetune: FinetuneConfig = FinetuneConfig(epochs=80, batch_size=16)


def mini_wmdp(
    cache: Path = DEFAULT_CACHE,
    data_config: MiniWmdpConfig = MiniWmdpConfig(),
    model_config: TinyLlamaConfig = MODEL,
    build: BuiltinWmdpConfig = BuiltinWmdpConfig(),
) -> BuiltinAssets:
    """Data and tokenizer of mini-WMDP (made on first use); the model comes from ``ensure_model``."""

    def write(stage: Path) -> None:
        write_mini_wmdp(data_config, stage / "data")
        rows = generate(data_config)
        train_tokenizer(
            [r["text"] for name in CORPORA for r in rows[name]], stage / "tokenizer", model_config.vocab_size
        )

    return builtin_assets(cache, {"data": data_config, "model": model_config, "build": build}, write)


def ensure_model(assets: BuiltinAssets, name: str, progress: Callable | None = None) -> Path:
    """Fine-tune the built-in ``target`` unless it is cached; returns its folder. ``progress`` shows the steps."""
    if name != "target":
        raise ValueError(f"unknown built-in WMDP model {name!r}; mini-WMDP has a target model only")
    folder = assets.model(name)
    if (folder / "training.json").is_file():
        return folder
    configs = read_json(assets.root / "configs.json")
    tokenizer = load_tokenizer(assets.tokenizer)
    texts = [text for corpus in CORPORA for text in load_corpus(assets.data, corpus)]
    documents = [ids + [tokenizer.eos_token_id] for ids in tokenizer(texts)["input_ids"]]
    data = pad_right(tokenizer, [(ids, ids) for ids in documents])
    finetune = FinetuneConfig(**configs["build"]["finetune"])
    model = TinyLlamaConfig(**configs["model"])
    info = {"trained_on": CORPORA, "epochs": finetune.epochs}
    return build_tiny_model(folder, tokenizer, data, model, finetune, info, progress, "fine-tune built-in target")
