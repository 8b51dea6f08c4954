"""Hugging Face causal LMs and tokenizers: loading with one-line errors, and the tiny built-in ones.

The built-in benchmarks train a byte-level BPE tokenizer on their own text with the ``tokenizers`` library and
build a small Llama-architecture model from a config, so nothing is downloaded.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch


@dataclass(frozen=True)
class TinyLlamaConfig:
    """The built-in model: a 4-layer Llama of width 128 (about 1 M parameters with a 2k vocabulary)."""

    hidden_size: int = 128
    intermediate_size: int = 384
    layers: int = 4
    heads: int = 4
    max_positions: int = 256
    vocab_size: int = 2048


def quiet_hugging_face() -> None:
    """No per-file progress bars or advisory warnings from datasets/transformers in our terminal output."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()


def load_tokenizer(name: str | Path, pad_token: str | None = None):
    """A tokenizer from a local folder or hub id; ``pad_token="eos"`` (or any token) sets a missing pad token."""
    from transformers import AutoTokenizer

    check_source(name, "tokenizer")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(name))
    except Exception as err:
        raise ValueError(f"could not load a tokenizer from {name!r} ({_first_line(err)})") from None
    if pad_token is not None and pad_token != "eos" and pad_token not in tokenizer.get_vocab():
        raise ValueError(
            f"--pad-token {pad_token!r} is not a token of {name}'s vocabulary; give one of its tokens, or eos "
            f"(its EOS, {tokenizer.eos_token!r})"
        )
    if pad_token is not None:
        tokenizer.pad_token = tokenizer.eos_token if pad_token == "eos" else pad_token
    return tokenizer


# --torch-dtype: the dtype weights are loaded in ("auto": the checkpoint's own)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "auto": "auto"}


def check_dtype(name: str) -> str:
    if name not in DTYPES:
        raise ValueError(f"unknown --torch-dtype {name!r}; use one of {', '.join(DTYPES)}")
    return name


def load_model(name: str | Path, device: str = "cpu", dtype: str = "float32"):
    """A causal LM from a local folder or hub id, its weights in ``dtype`` (a name of DTYPES), in eval mode on
    ``device``."""
    from transformers import AutoModelForCausalLM

    check_source(name, "model")
    try:
        model = AutoModelForCausalLM.from_pretrained(str(name), dtype=DTYPES[check_dtype(dtype)])
    except Exception as err:
        raise ValueError(f"could not load a causal LM from {name!r} ({_first_line(err)})") from None
    return model.to(device).eval()


def load_reference_model(name: str, model, tokenizer):
    """The Reference attack's model, on ``model``'s device in its dtype; it scores the evaluated model's tokens, so
    it must read them (a vocabulary at least the tokenizer's)."""
    parameter = next(model.parameters())
    reference = load_model(name, str(parameter.device), str(parameter.dtype).removeprefix("torch."))
    if reference.config.vocab_size < len(tokenizer):
        raise ValueError(
            f"the reference model {name} has {reference.config.vocab_size} tokens, the tokenizer {len(tokenizer)}; "
            "give a reference model of the same tokenizer"
        )
    return reference


_REFERENCE_LOSSES: dict[tuple, list[float]] = {}


def reference_losses(name: str, model, tokenizer, inputs: object, compute: Callable[[Any], list[float]]) -> list[float]:
    """The Reference attack model's losses on one evaluation's texts, computed once per process: the first call loads
    ``name`` (``load_reference_model``), returns ``compute(reference)`` and lets the model go; a later call on the same
    ``inputs`` (JSON: everything the texts and their batches are made of), on a model of the same dtype and device,
    reuses those losses. A run evaluates many models on the same texts (each epoch's, each method's), and the reference
    model's losses on them never change: it is loaded once, not once per evaluation, and never kept during training."""
    parameter = next(model.parameters())
    digest = hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()
    key = (name, str(parameter.dtype), str(parameter.device), digest)
    if key not in _REFERENCE_LOSSES:
        _REFERENCE_LOSSES[key] = compute(load_reference_model(name, model, tokenizer))
    return _REFERENCE_LOSSES[key]


def model_type(name: str | Path) -> str | None:
    """The ``model_type`` of a model's config (e.g. llama, phi), or None when it cannot be read."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(str(name)).model_type
    except Exception:  # an unreadable config is reported when the model itself is loaded
        return None


def check_source(name: str | Path, what: str) -> None:
    """A local folder must exist; a hub id needs the hub, or the local cache when the hub cannot be reached."""
    path = Path(name)
    looks_local = str(name).startswith((".", "/", "~")) or path.exists()
    if looks_local and not path.is_dir():
        raise ValueError(f"{what} folder {name} does not exist; give a local folder or a hub id")
    if not looks_local:
        require_hub_or_cache(str(name), "config.json" if what == "model" else "tokenizer_config.json")


@functools.cache
def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face Hub answers within ``timeout`` seconds, asked through huggingface_hub's own HTTP
    session: its endpoint and proxies, and its offline mode (``HF_HUB_OFFLINE``: the session refuses, so False)."""
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    try:
        get_session().head(constants.ENDPOINT, timeout=timeout)
    except Exception:  # OfflineModeIsEnabled, no route, a timeout: each means "not reachable" here
        return False
    return True


def require_hub_or_cache(repo_id: str, filename: str, repo_type: str = "model") -> None:
    """Fail in seconds, not after the hub client's minute of retries: when the hub is unreachable, use the local
    cache (switching this process to offline mode) or say that ``repo_id`` cannot be had."""
    if hub_reachable():
        return
    import huggingface_hub.constants as hub
    from huggingface_hub import try_to_load_from_cache

    if not isinstance(try_to_load_from_cache(repo_id, filename, repo_type=repo_type), str):
        raise ValueError(
            f"cannot reach the Hugging Face Hub for {repo_id!r} and it is not in the local cache; "
            "give a local folder instead"
        )
    os.environ["HF_HUB_OFFLINE"] = "1"
    hub.HF_HUB_OFFLINE = True


# transformers 4's ``clean_up_tokenization`` (what ``clean_up_tokenization_spaces=True`` does there)
_CLEAN_UPS = ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"))
_CLEAN_UPS += ((" 's", "'s"), (" 've", "'ve"), (" 're", "'re"))


def decode(tokenizer, ids) -> str:
    """Token ids decoded as the benchmarks' code decodes them (TOFU's, open-unlearning's and MUSE's, all written for
    transformers 4): without special tokens, then the tokenisation-space clean-up that ``clean_up_tokenization_spaces
    =True`` applies there (" ." -> ".", " 's" -> "'s", …). transformers 5 skips that clean-up for BPE tokenizers, so it
    is applied here explicitly: the same text under either version."""
    text = tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    for before, after in _CLEAN_UPS:
        text = text.replace(before, after)
    return text


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def train_tokenizer(texts: list[str], folder: Path, vocab_size: int = 2048, space_ends_word: bool = False):
    """Train a byte-level BPE tokenizer on ``texts`` and save it as a Hugging Face tokenizer in ``folder``.

    Whitespace starts the next word's token, as in GPT-2, unless ``space_ends_word``: then it ends the previous
    word's, so a prompt that ends in a space ("Answer: ") tokenises as a prefix of the text it was cut from
    (with GPT-2's split it would end in a bare space token the model never saw before a word).

    Special tokens: <s> (BOS, prepended by the tokenizer like Llama's), </s> (EOS), <pad>, <unk>. No chat template,
    so prompts take the Llama-2 "[INST] … [/INST]" form.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>", "<unk>"]
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    if space_ends_word:  # each piece is a run of non-space characters and the whitespace after it
        words = pre_tokenizers.Split(Regex(r"\S*\s+|\S+$"), behavior="isolated")
        bpe.pre_tokenizer = pre_tokenizers.Sequence(
            [words, pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
        )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(texts, trainer)
    bpe.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bpe.token_to_id("<s>"))]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )
    tokenizer.save_pretrained(str(folder))
    return tokenizer


def tiny_llama(config: TinyLlamaConfig, tokenizer, seed: int):
    """A freshly initialised small Llama whose vocabulary and special tokens match ``tokenizer``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    llama = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.layers,
        num_attention_heads=config.heads,
        num_key_value_heads=config.heads,
        max_position_embeddings=config.max_positions,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(llama)
