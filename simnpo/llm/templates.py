"""Prompt templates and the one encoding of a question/answer pair, token for token as the benchmarks' code builds
them (TOFU's ``data_module.convert_raw_data_to_model_format``, open-unlearning's ``preprocess_chat_instance``;
docs/conventions.md).

A template is data: either tags around the question (Llama-2's ``"[INST] "`` / ``" [/INST]"`` / ``""``, TOFU's
Phi-1.5 ``"Question: "`` / ``"\\n"`` / ``"Answer: "``) or the tokenizer's own chat template, with the system prompt
and date string open-unlearning's model configs set. The encoding:

- tags: ``full = tokenize(prompt_text + answer)`` as ONE string (so the answer's first token is the one the
  benchmark's checkpoints were trained on: ``The``, not ``▁The``, after ``[/INST]``),
  ``prompt = tokenize(prompt_text)``, both with the tokenizer's special tokens and cut at ``max_length``;
- chat: ``full = apply_chat_template([system?, user, assistant])``, ``prompt = apply_chat_template([system?, user],
  add_generation_prompt=True)``;
- labels are -100 on the first ``len(prompt)`` positions and the rest of ``full``; one EOS is appended unless
  ``full`` already ends with it. Generation starts from ``prompt``.
"""

from __future__ import annotations

from dataclasses import dataclass

from simnpo.losses import IGNORE_INDEX

OPEN_UNLEARNING_SYSTEM_PROMPT = "You are a helpful assistant."


@dataclass(frozen=True)
class Template:
    """How a question becomes a prompt. ``chat``: the tokenizer's chat template, else the three tags.
    ``chat_marker``: text the tokenizer's chat template must hold for this template to fit it (None: any)."""

    name: str
    description: str
    user_start: str = ""
    user_end: str = ""
    assistant_start: str = ""
    chat: bool = False
    system_prompt: str | None = None
    date_string: str | None = None
    chat_marker: str | None = None

    def describe(self, reason: str) -> str:
        return f"template {self.name} ({reason}): {self.description}"

    def prompt_text(self, question: str) -> str:
        assert not self.chat, "chat templates are rendered by the tokenizer"
        return self.user_start + question + self.user_end + self.assistant_start


TEMPLATES = {
    t.name: t
    for t in (
        Template(
            "llama2",
            "Llama-2-chat tags as TOFU and open-unlearning use them: [INST] question [/INST]answer",
            "[INST] ",
            " [/INST]",
            "",
            chat_marker="[INST]",
        ),
        Template(
            "phi",
            "TOFU's Phi-1.5 (and open-unlearning's base-model) tags: Question: question\\nAnswer: answer",
            "Question: ",
            "\n",
            "Answer: ",
        ),
        Template("chat", "the tokenizer's chat template, no system prompt", chat=True),
        Template(
            "chat-system",
            f"the tokenizer's chat template with the system prompt {OPEN_UNLEARNING_SYSTEM_PROMPT!r} "
            "(open-unlearning's Qwen2.5, Phi-3.5, zephyr configs)",
            chat=True,
            system_prompt=OPEN_UNLEARNING_SYSTEM_PROMPT,
        ),
        Template(
            "llama3",
            f"Llama-3 chat template with the system prompt {OPEN_UNLEARNING_SYSTEM_PROMPT!r} and the date string "
            "'10 Apr 2025' (open-unlearning's Llama-3.x-Instruct configs)",
            chat=True,
            system_prompt=OPEN_UNLEARNING_SYSTEM_PROMPT,
            date_string="10 Apr 2025",
            chat_marker="<|start_header_id|>",
        ),
    )
}
PHI_MODEL_TYPES = ("phi", "phi-msft", "mixformer-sequential")


def detect_template(tokenizer, model_type: str | None) -> tuple[str, str]:
    """The template a model's tokenizer (and architecture) implies, with the reason; raises ValueError where it is
    ambiguous."""
    chat = getattr(tokenizer, "chat_template", None)
    if isinstance(chat, str) and chat:
        if "<|start_header_id|>" in chat:
            return "llama3", "its chat template is Llama-3's"
        if "[INST]" in chat and "<<SYS>>" in chat:
            return "llama2", "its chat template is Llama-2-chat's, whose TOFU checkpoints use the [INST] tags"
        if "<|im_start|>" in chat:
            return "chat-system", "its chat template is ChatML (open-unlearning's Qwen2.5 config)"
        return "chat", "it has a chat template"
    if model_type in PHI_MODEL_TYPES:
        return "phi", f"no chat template, model type {model_type}"
    if model_type == "llama":
        return "llama2", "no chat template, Llama architecture (TOFU's Llama-2 checkpoints)"
    raise ValueError(
        f"cannot tell the prompt template of a {model_type or 'unknown'} model without a chat template; "
        f"pass --template ({', '.join(TEMPLATES)})"
    )


def check_template(template: Template, tokenizer, source: str) -> None:
    """Refuse a template that contradicts the tokenizer: a chat template it lacks, or tags or a chat family that
    its own chat template does not use."""
    chat = getattr(tokenizer, "chat_template", None)
    chat = chat if isinstance(chat, str) and chat else None
    if template.chat and chat is None:
        raise ValueError(
            f"template {template.name} uses the tokenizer's chat template but {source} has none; "
            "use --template llama2 or phi"
        )
    if chat is not None and (
        (template.chat_marker is not None and template.chat_marker not in chat)
        or (not template.chat and template.chat_marker is None)
    ):
        detected, _ = detect_template(tokenizer, None)
        raise ValueError(
            f"template {template.name} contradicts the chat template of {source}'s tokenizer; "
            f"use --template {detected} (or drop --template to detect it)"
        )


def resolve_template(name: str | None, tokenizer, model_type: str | None, source: str) -> tuple[Template, str]:
    """The template to use with this tokenizer and why: the named one (checked against the tokenizer) or the
    detected one."""
    if name is None:
        name, why = detect_template(tokenizer, model_type)
        why = f"detected: {why}"
    else:
        why = "--template"
    template = template_named(name)
    check_template(template, tokenizer, source)
    return template, why


def template_named(name: str) -> Template:
    if name not in TEMPLATES:
        raise ValueError(f"unknown template {name!r}; use one of {', '.join(TEMPLATES)}")
    return TEMPLATES[name]


def _chat_ids(tokenizer, template: Template, messages: list[dict], generation_prompt: bool) -> list[int]:
    extra = {"date_string": template.date_string} if template.date_string is not None else {}
    ids = tokenizer.apply_chat_template(
        messages, tokenize=True, add_generation_prompt=generation_prompt, return_dict=False, **extra
    )
    return list(ids["input_ids"] if isinstance(ids, dict) else ids)


def _messages(template: Template, question: str) -> list[dict]:
    system = [{"role": "system", "content": template.system_prompt}] if template.system_prompt else []
    return [*system, {"role": "user", "content": question}]


def prompt_ids(tokenizer, template: Template, question: str, max_length: int = 512) -> list[int]:
    """The ids a generation starts from: the prompt of ``encode_pair``."""
    if template.chat:
        return _chat_ids(tokenizer, template, _messages(template, question), generation_prompt=True)
    text = template.prompt_text(question)
    return tokenizer(text, add_special_tokens=True, max_length=max_length, truncation=True)["input_ids"]


def encode_pair(
    tokenizer, template: Template, question: str, answer: str, max_length: int = 512
) -> tuple[list[int], list[int]]:
    """(input_ids, labels) of one question/answer pair as the benchmarks' code builds them (module docstring)."""
    if template.chat:
        messages = [*_messages(template, question), {"role": "assistant", "content": answer}]
        full = _chat_ids(tokenizer, template, messages, generation_prompt=False)
    else:
        text = template.prompt_text(question) + answer
        full = tokenizer(text, add_special_tokens=True, max_length=max_length, truncation=True)["input_ids"]
    if full[-1] != tokenizer.eos_token_id:
        full = [*full, tokenizer.eos_token_id]
    prompt_length = len(prompt_ids(tokenizer, template, question, max_length))
    labels = ([IGNORE_INDEX] * prompt_length + full[prompt_length:])[: len(full)]
    return full, labels
