"""MUSE data: every subset of ``muse-bench/MUSE-News`` / ``MUSE-Books`` from the hub, or from a local folder laid
out as ``FOLDER/SUBSET/SPLIT.json`` (JSON lines), and raw text cut into fully labelled chunks for unlearning."""

from __future__ import annotations

from pathlib import Path

from simnpo.llm.data import EncodedBatch, load_rows, pad_right

HUB_IDS = {"news": "muse-bench/MUSE-News", "books": "muse-bench/MUSE-Books"}
FIELDS = {
    "raw": ("text",),
    "verbmem": ("prompt", "gt"),
    "knowmem": ("question", "answer"),
    "privleak": ("text",),
    "scal": ("text",),
    "sust": ("text",),
}


def load_muse(source: str | Path, subset: str, split: str) -> list[dict]:
    """Rows of one split of one MUSE subset, checked for the subset's fields."""
    if subset not in FIELDS:
        raise ValueError(f"unknown MUSE subset {subset!r}; use one of {', '.join(FIELDS)}")
    return load_rows(source, f"{subset}/{split}.json", subset, split, f"MUSE {subset}/{split}", FIELDS[subset])


def chunk_texts(tokenizer, texts: list[str], max_tokens: int = 2048) -> EncodedBatch:
    """Join the texts into one token stream (EOS after each document) and cut it into chunks of ``max_tokens``,
    every token a label, as MUSE's trainer does: each chunk starts with the tokenizer's BOS token (when it has
    one) followed by ``max_tokens - 1`` stream tokens, and a short last chunk is topped up from the start of the
    stream, so every chunk is full. A stream shorter than one chunk gives a single shorter chunk."""
    if max_tokens < 2:
        raise ValueError(f"chunks need at least 2 tokens, got {max_tokens}")
    stream: list[int] = []
    for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]:
        stream += ids + [tokenizer.eos_token_id]
    bos = [] if tokenizer.bos_token_id is None else [tokenizer.bos_token_id]
    width = max_tokens - len(bos)
    chunks = [stream[i : i + width] for i in range(0, len(stream), width)]
    if len(chunks) > 1:
        chunks[-1] = (chunks[-1] + stream)[:width]
    return pad_right([(bos + c, bos + c) for c in chunks], tokenizer.pad_token_id)
