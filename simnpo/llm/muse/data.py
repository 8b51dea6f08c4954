"""MUSE data: every subset of ``muse-bench/MUSE-News`` / ``MUSE-Books`` from the hub, or from a local folder laid
out as ``FOLDER/SUBSET/SPLIT.json`` (JSON lines). Raw text is cut into chunks for unlearning by ``data.chunk_texts``."""

from __future__ import annotations

from pathlib import Path

from simnpo.llm.data import load_rows

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
