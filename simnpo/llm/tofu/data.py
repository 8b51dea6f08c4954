"""TOFU data: every configuration from the hub (``locuslab/TOFU``) or a local folder of the same JSON files, and
question/answer pairs encoded for a causal LM (docs/conventions.md).

Encoding: a prompt template (``templates``) applied as TOFU's and open-unlearning's code applies it; the prompt is
labelled -100, the answer is followed by one EOS, and padding is labelled -100 too.
"""

from __future__ import annotations

from pathlib import Path

from simnpo.llm.data import EncodedBatch, load_rows, pad_right
from simnpo.llm.templates import Template, encode_pair, prompt_ids

FORGET_SPLITS = {"forget01": "retain99", "forget05": "retain95", "forget10": "retain90"}
PERTURBED_SETS = ("retain_perturbed", "real_authors_perturbed", "world_facts_perturbed")
# IdkPO's preferred answers, as TOFU's idontknow.jsonl: one is drawn (seeded) for each forget question
REFUSALS = (
    "I don't know.",
    "I'm not sure.",
    "I have no information about that.",
    "I can't answer that.",
    "That is not something I know.",
    "I don't have that information.",
    "I am unable to answer.",
    "Sorry, I don't know.",
    "I have no idea.",
    "I cannot say.",
    "That's beyond my knowledge.",
    "I'm afraid I don't know.",
    "No information is available to me.",
    "I couldn't tell you.",
    "I'm not able to answer that question.",
    "I really don't know.",
    "I lack that knowledge.",
    "Unfortunately, I don't know.",
    "I have no knowledge of that.",
    "I'm unaware of the answer.",
)


def _required_fields(name: str) -> tuple[str, ...]:
    if name.endswith("_perturbed"):
        if name.startswith(("real_authors", "world_facts")):
            return ("question", "answer", "perturbed_answer")
        return ("question", "answer", "paraphrased_answer", "perturbed_answer")
    return ("question", "answer")


def load_tofu(source: str | Path, name: str) -> list[dict]:
    """Rows of one TOFU configuration from a local folder (``NAME.json``) or a hub dataset id (``locuslab/TOFU``)."""
    return load_rows(source, f"{name}.json", name, "train", f"TOFU config {name!r}", _required_fields(name))


def encode_prompts(tokenizer, template: Template, questions: list[str], max_length: int = 512) -> list[list[int]]:
    """The prompt ids generation starts from, one list per question (``templates.prompt_ids``)."""
    return [prompt_ids(tokenizer, template, q, max_length) for q in questions]


def encode_qa(
    tokenizer,
    template: Template,
    questions: list[str],
    answers: list[str],
    max_length: int = 512,
    mask_pad_tokens: bool = False,
) -> EncodedBatch:
    """Each pair encoded as the benchmark's code encodes it (``templates.encode_pair``), right-padded into one
    batch; ``mask_pad_tokens``: the attention mask hides pad-valued tokens as open-unlearning's does
    (``data.pad_right``)."""
    rows = [encode_pair(tokenizer, template, q, a, max_length) for q, a in zip(questions, answers, strict=True)]
    return pad_right(tokenizer, rows, mask_pad_tokens)
