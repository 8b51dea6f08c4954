"""MUSE data: every subset of ``muse-bench/MUSE-News`` / ``MUSE-Books`` from the hub, or from a local folder laid
out as ``FOLDER/SUBSET/SPLIT.json`` (JSON lines), and raw text cut into fully labelled chunks for unlearning."""

from __future__ import annotations

from pathlib import Path

import torch

from simnpo.llm.tofu_data import EncodedBatch, load_rows

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
    """Join the texts (EOS between documents), cut the token stream into chunks of at most ``max_tokens``, and
    label every token (the shift leaves the first of each chunk unpredicted)."""
    if max_tokens < 2:
        raise ValueError(f"chunks need at least 2 tokens, got {max_tokens}")
    stream: list[int] = []
    for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]:
        stream += ids + [tokenizer.eos_token_id]
    chunks = [stream[i : i + max_tokens] for i in range(0, len(stream), max_tokens)]
    width = max(len(c) for c in chunks)
    input_ids = torch.full((len(chunks), width), tokenizer.pad_token_id, dtype=torch.long)
    labels = torch.full((len(chunks), width), -100, dtype=torch.long)
    mask = torch.zeros((len(chunks), width), dtype=torch.long)
    for row, chunk in enumerate(chunks):
        input_ids[row, : len(chunk)] = labels[row, : len(chunk)] = torch.tensor(chunk)
        mask[row, : len(chunk)] = 1
    return EncodedBatch(input_ids, mask, labels)
