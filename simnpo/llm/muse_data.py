"""MUSE data: every subset of ``muse-bench/MUSE-News`` / ``MUSE-Books`` from the hub, or from a local folder laid
out as ``FOLDER/SUBSET/SPLIT.json`` (JSON lines), and raw text cut into fully labelled chunks for unlearning."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from simnpo.llm.tofu_data import EncodedBatch

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
    import datasets

    if subset not in FIELDS:
        raise ValueError(f"unknown MUSE subset {subset!r}; use one of {', '.join(FIELDS)}")
    folder = Path(source)
    try:
        if folder.is_dir():
            path = folder / subset / f"{split}.json"
            if not path.is_file():
                raise ValueError(f"{path} not found: a MUSE folder needs {subset}/{split}.json (JSON lines)")
            rows = datasets.load_dataset("json", data_files=str(path), split="train").to_list()
        elif folder.exists() or str(source).startswith((".", "/")):
            raise ValueError(f"MUSE data folder {source} does not exist")
        else:
            from simnpo.llm.models import hub_reachable

            if not hub_reachable() and os.environ.get("HF_HUB_OFFLINE") != "1":
                raise ValueError(f"cannot reach the Hugging Face Hub for dataset {source!r}; pass a local folder")
            rows = datasets.load_dataset(str(source), name=subset, split=split).to_list()
    except ValueError:
        raise
    except Exception as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"could not load MUSE {subset}/{split} from {source!r} ({reason})") from None
    for i, row in enumerate(rows):
        missing = [f for f in FIELDS[subset] if f not in row]
        if missing:
            raise ValueError(f"MUSE {subset}/{split} item {i} has no field {', '.join(missing)}")
    if not rows:
        raise ValueError(f"MUSE {subset}/{split} of {source} holds no items")
    return rows


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
