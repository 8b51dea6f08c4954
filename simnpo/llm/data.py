"""What every benchmark's data shares: rows of a data file from a local folder or the hub, encoded sequences
right-padded into one batch, and raw text cut into chunks."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from simnpo.losses import IGNORE_INDEX
from simnpo.runs import atomic_path


def load_rows(
    source: str | Path, local_file: str, hub_config: str, hub_split: str, what: str, fields: tuple[str, ...]
) -> list[dict]:
    """Rows of one data file from a local folder (``local_file`` below it, JSON lines) or a hub dataset
    (``hub_config``/``hub_split``, through ``datasets``), each checked for ``fields``; every failure is one line
    naming ``what`` or the file."""
    folder = Path(source)
    if folder.is_dir():
        path = folder / local_file
        if not path.is_file():
            raise ValueError(f"{path} not found: a {what.split()[0]} folder needs {local_file} (JSON lines)")
        rows = read_json_lines(path)
    elif folder.exists() or str(source).startswith((".", "/")):
        raise ValueError(f"{what.split()[0]} data folder {source} does not exist")
    else:
        rows = _hub_rows(str(source), hub_config, hub_split, what)
    for i, row in enumerate(rows):
        missing = [f for f in fields if not isinstance(row, dict) or f not in row]
        if missing:
            raise ValueError(f"{what} item {i} has no field {', '.join(missing)}")
    if not rows:
        raise ValueError(f"{what} of {source} holds no items")
    return rows


def write_json_lines(files: dict[str, list[dict]], folder: Path) -> Path:
    """Write each ``name: rows`` as ``folder/NAME.json`` (JSON lines; a name may hold a subfolder), each file
    atomically: how the built-in benchmarks lay out their data, as the real benchmarks' files are."""
    for name, rows in files.items():
        with atomic_path(Path(folder) / f"{name}.json") as tmp:
            tmp.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return Path(folder)


def read_json_lines(path: Path) -> list[dict]:
    """The rows of a JSON-lines file (a single JSON array is read too); a malformed line is named."""
    text = path.read_text()
    if text.lstrip().startswith("["):
        try:
            return json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON ({err}); give one JSON object per line") from None
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path} line {number} is not valid JSON ({err}); give one object per line") from None
    return rows


def _hub_rows(dataset: str, config: str, split: str, what: str) -> list[dict]:
    import datasets

    from simnpo.llm.models import hub_reachable

    if not hub_reachable() and os.environ.get("HF_HUB_OFFLINE") != "1":
        raise ValueError(
            f"cannot reach the Hugging Face Hub for dataset {dataset!r}; pass a local folder of its JSON "
            "files with --data (or set HF_HUB_OFFLINE=1 to use the datasets cache)"
        )
    try:
        return datasets.load_dataset(dataset, name=config, split=split).to_list()
    except Exception as err:  # hub unreachable, unknown dataset or config: one line, not a traceback
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(
            f"could not load {what} from {dataset!r} ({reason}); pass a local folder of its JSON files with --data"
        ) from None


def require_pad_token(tokenizer, name: str) -> None:
    if tokenizer.pad_token_id is None:
        raise ValueError(f"the tokenizer of {name} has no pad token; pass --pad-token (e.g. --pad-token eos)")


@dataclass
class EncodedBatch:
    """input_ids, attention_mask, labels: [n, T], right-padded; prompt and padding labelled -100. lengths: [n], each
    row's token count before its padding (the attention mask may also hide tokens inside a row: ``padded``)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    lengths: torch.Tensor

    def __getitem__(self, index) -> EncodedBatch:
        return EncodedBatch(self.input_ids[index], self.attention_mask[index], self.labels[index], self.lengths[index])

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def to(self, device) -> EncodedBatch:
        return EncodedBatch(
            self.input_ids.to(device), self.attention_mask.to(device), self.labels.to(device), self.lengths.to(device)
        )

    def trimmed(self) -> EncodedBatch:
        """Without the padding columns that no row uses (after selecting a mini-batch of rows)."""
        width = int(self.lengths.max())
        return EncodedBatch(
            self.input_ids[:, :width], self.attention_mask[:, :width], self.labels[:, :width], self.lengths
        )


def padded(tokenizer, sequences: list[list[int]], side: str, mask_pad_tokens: bool = False):
    """Token id sequences padded by the tokenizer (its pad token) on ``side`` ("right" or "left") into input_ids and
    attention_mask [n, T]. ``mask_pad_tokens`` hides every token equal to the pad token as well, as open-unlearning's
    collator does (``attention_mask = input_ids != pad_token_id``): where the pad token is the EOS, that hides the
    EOS tokens inside a chat prompt too (docs/conventions.md)."""
    from transformers.data.data_collator import pad_without_fast_tokenizer_warning  # the collators' own padding

    batch = pad_without_fast_tokenizer_warning(
        tokenizer,
        {"input_ids": sequences},
        padding=True,
        padding_side=side,
        return_attention_mask=True,
        return_tensors="pt",
    )
    ids, mask = batch["input_ids"].long(), batch["attention_mask"].long()
    if mask_pad_tokens:
        mask &= (ids != tokenizer.pad_token_id).long()
    return ids, mask


def pad_right(tokenizer, rows: list[tuple[list[int], list[int]]], mask_pad_tokens: bool = False) -> EncodedBatch:
    """(input_ids, labels) rows in one batch: ids and attention mask right-padded by the tokenizer (``padded``),
    labels with -100."""
    input_ids, mask = padded(tokenizer, [ids for ids, _ in rows], "right", mask_pad_tokens)
    labels = torch.full_like(input_ids, IGNORE_INDEX)
    for i, (_, lab) in enumerate(rows):
        labels[i, : len(lab)] = torch.tensor(lab, dtype=torch.long)
    return EncodedBatch(input_ids, mask, labels, torch.tensor([len(ids) for ids, _ in rows], dtype=torch.long))


def chunk_texts(tokenizer, texts: list[str], max_tokens: int = 2048) -> EncodedBatch:
    """Join the texts into one token stream (EOS after each document) and cut it into chunks of ``max_tokens``,
    every token a label, as MUSE's trainer does (WMDP's corpora are cut the same way): each chunk starts with the
    tokenizer's BOS token (when it has one) followed by ``max_tokens - 1`` stream tokens, and a short last chunk is
    topped up from the start of the stream, so every chunk is full. A stream shorter than one chunk gives a single
    shorter chunk."""
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
    return pad_right(tokenizer, [(bos + c, bos + c) for c in chunks])
