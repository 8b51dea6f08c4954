"""TOFU data: every configuration from the hub (``locuslab/TOFU``) or a local folder of the same JSON files, and
question/answer pairs encoded for a causal LM (docs/conventions.md).

Encoding: a prompt template (``templates``) applied as TOFU's and open-unlearning's code applies it; the prompt is
labelled -100, the answer is followed by one EOS, and padding is labelled -100 too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from simnpo.llm.templates import Template, encode_pair, prompt_ids
from simnpo.losses import IGNORE_INDEX

TOFU_HUB_ID = "locuslab/TOFU"
FORGET_SPLITS = {"forget01": "retain99", "forget05": "retain95", "forget10": "retain90"}
PERTURBED_SETS = ("retain_perturbed", "real_authors_perturbed", "world_facts_perturbed")


def _required_fields(name: str) -> tuple[str, ...]:
    if name.endswith("_perturbed"):
        if name.startswith(("real_authors", "world_facts")):
            return ("question", "answer", "perturbed_answer")
        return ("question", "answer", "paraphrased_answer", "perturbed_answer")
    return ("question", "answer")


def load_rows(
    source: str | Path, local_file: str, hub_config: str, hub_split: str, what: str, fields: tuple[str, ...]
) -> list[dict]:
    """Rows of one data file from a local folder (``local_file`` below it, JSON lines) or a hub dataset
    (``hub_config``/``hub_split``), each checked for ``fields``; every failure is one line naming ``what``."""
    import datasets

    folder = Path(source)
    try:
        if folder.is_dir():
            path = folder / local_file
            if not path.is_file():
                raise ValueError(f"{path} not found: a {what.split()[0]} folder needs {local_file} (JSON lines)")
            rows = datasets.load_dataset("json", data_files=str(path), split="train").to_list()
        elif folder.exists() or str(source).startswith((".", "/")):
            raise ValueError(f"{what.split()[0]} data folder {source} does not exist")
        else:
            from simnpo.llm.models import hub_reachable

            if not hub_reachable() and os.environ.get("HF_HUB_OFFLINE") != "1":
                raise ValueError(
                    f"cannot reach the Hugging Face Hub for dataset {source!r}; pass a local folder of its JSON "
                    "files with --data (or set HF_HUB_OFFLINE=1 to use the datasets cache)"
                )
            rows = datasets.load_dataset(str(source), name=hub_config, split=hub_split).to_list()
    except ValueError:
        raise
    except Exception as err:  # hub unreachable, unknown dataset or config: one line, not a traceback
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(
            f"could not load {what} from {source!r} ({reason}); pass a local folder of its JSON files with --data"
        ) from None
    for i, row in enumerate(rows):
        missing = [f for f in fields if f not in row]
        if missing:
            raise ValueError(f"{what} item {i} has no field {', '.join(missing)}")
    if not rows:
        raise ValueError(f"{what} of {source} holds no items")
    return rows


def load_tofu(source: str | Path, name: str) -> list[dict]:
    """Rows of one TOFU configuration from a local folder (``NAME.json``) or a hub dataset id (``locuslab/TOFU``)."""
    return load_rows(source, f"{name}.json", name, "train", f"TOFU config {name!r}", _required_fields(name))


def require_pad_token(tokenizer, name: str) -> None:
    if tokenizer.pad_token_id is None:
        raise ValueError(f"the tokenizer of {name} has no pad token; pass --pad-token (e.g. --pad-token eos)")


@dataclass
class EncodedBatch:
    """input_ids, attention_mask, labels: [n, T], right-padded; prompt and padding labelled -100."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor

    def __getitem__(self, index) -> EncodedBatch:
        return EncodedBatch(self.input_ids[index], self.attention_mask[index], self.labels[index])

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def to(self, device) -> EncodedBatch:
        return EncodedBatch(self.input_ids.to(device), self.attention_mask.to(device), self.labels.to(device))

    def trimmed(self) -> EncodedBatch:
        """Without the padding columns that no row uses (after selecting a mini-batch of rows)."""
        width = int(self.attention_mask.sum(-1).max())
        return EncodedBatch(self.input_ids[:, :width], self.attention_mask[:, :width], self.labels[:, :width])


def encode_prompts(tokenizer, template: Template, questions: list[str], max_length: int = 512) -> list[list[int]]:
    """The prompt ids generation starts from, one list per question (``templates.prompt_ids``)."""
    return [prompt_ids(tokenizer, template, q, max_length) for q in questions]


def encode_qa(
    tokenizer, template: Template, questions: list[str], answers: list[str], max_length: int = 512
) -> EncodedBatch:
    """Each pair encoded as the benchmark's code encodes it (``templates.encode_pair``), right-padded into one
    batch."""
    rows = [encode_pair(tokenizer, template, q, a, max_length) for q, a in zip(questions, answers, strict=True)]
    return pad_right(rows, tokenizer.pad_token_id)


def pad_right(rows: list[tuple[list[int], list[int]]], pad_id: int) -> EncodedBatch:
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (ids, lab) in enumerate(rows):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        labels[i, : len(lab)] = torch.tensor(lab)
        mask[i, : len(ids)] = 1
    return EncodedBatch(input_ids, mask, labels)
