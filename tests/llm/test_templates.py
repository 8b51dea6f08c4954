"""Prompt templates: the encoding equals the benchmarks' procedure token for token on a real Llama-2-style
SentencePiece tokenizer (tag and chat variants), detection, and refusals."""

import pytest

from simnpo.llm.templates import TEMPLATES, Template, check_template, detect_template, encode_pair, prompt_ids
from simnpo.llm.tofu.mini import MiniTofuConfig, generate
from simnpo.losses import IGNORE_INDEX

LLAMA3_LIKE = (  # Llama-3's layout (system turn with the date, header tags, end of turn) in the Llama-2 vocabulary
    "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{% if m['role'] == 'system' %}Today Date: {{ date_string }}\n\n{% endif %}{{ m['content'] }}{{ eos_token }}"
    "{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)


def open_unlearning_encoding(tokenizer, template_args: dict, question: str, answer: str, max_length: int = 512):
    """open-unlearning's ``preprocess_chat_instance`` (src/data/utils.py) for one pair without in-context
    examples, transcribed: the benchmark's procedure our encoding must equal."""
    if template_args["apply_chat_template"]:
        chat = []
        if template_args.get("system_prompt"):
            chat += [{"role": "system", "content": template_args["system_prompt"]}]
        chat += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        date = {"date_string": template_args["date_string"]} if template_args.get("date_string") else {}
        chat_ids = tokenizer.apply_chat_template(chat, tokenize=True, add_generation_prompt=False, **date)
        prompt = tokenizer.apply_chat_template(chat[:-1], tokenize=True, add_generation_prompt=True, **date)
        chat_ids, prompt = list(chat_ids["input_ids"]), list(prompt["input_ids"])  # transformers 5: a BatchEncoding
    else:
        wrapped = template_args["user_start_tag"] + question + template_args["user_end_tag"]
        wrapped += template_args["asst_start_tag"]
        chat_ids = tokenizer(wrapped + answer, add_special_tokens=True, max_length=max_length, truncation=True)
        prompt = tokenizer(wrapped, add_special_tokens=True, max_length=max_length, truncation=True)["input_ids"]
        chat_ids = chat_ids["input_ids"]
    if chat_ids[-1] != tokenizer.eos_token_id:
        chat_ids += [tokenizer.eos_token_id]
    labels = [IGNORE_INDEX] * len(prompt) + chat_ids[len(prompt) :]
    return chat_ids, labels, prompt


LLAMA2_ARGS = {"apply_chat_template": False, "user_start_tag": "[INST] ", "user_end_tag": " [/INST]"}
LLAMA2_ARGS["asst_start_tag"] = ""  # open-unlearning's configs/model/Llama-2-7b-chat-hf.yaml
PHI_ARGS = {"apply_chat_template": False, "user_start_tag": "Question: ", "user_end_tag": "\n"}
PHI_ARGS["asst_start_tag"] = "Answer: "  # configs/model/phi-1_5.yaml
LLAMA3_ARGS = {"apply_chat_template": True, "system_prompt": "You are a helpful assistant."}
LLAMA3_ARGS["date_string"] = "10 Apr 2025"  # configs/model/Llama-3.2-1B-Instruct.yaml


@pytest.fixture(scope="module")
def pairs():
    rows = generate(MiniTofuConfig())
    return [(r["question"], r["answer"]) for r in rows["full"][:50]]


@pytest.mark.parametrize("name, args", [("llama2", LLAMA2_ARGS), ("phi", PHI_ARGS)])
def test_tag_templates_equal_open_unlearning_on_a_sentencepiece_tokenizer(llama2_tokenizer, pairs, name, args):
    tokenizer, sp = llama2_tokenizer
    template = TEMPLATES[name]
    for question, answer in pairs:
        ids, labels = encode_pair(tokenizer, template, question, answer)
        expected_ids, expected_labels, expected_prompt = open_unlearning_encoding(tokenizer, args, question, answer)
        assert (ids, labels) == (expected_ids, expected_labels)
        assert prompt_ids(tokenizer, template, question) == expected_prompt
        # "[/INST]" ends a piece, so the prompt is a prefix of the joint ids; "Answer: " ends in a bare "▁" that
        # the joint text merges into the answer's first word, whose label the benchmark's len(prompt) then masks
        assert (expected_prompt == ids[: len(expected_prompt)]) == (name == "llama2")
        # premise: this is SentencePiece's own tokenisation of the joint text
        assert ids == [sp.bos_id(), *sp.encode(template.prompt_text(question) + answer), sp.eos_id()]


def test_the_llama2_border_is_the_joint_one_not_a_separate_space(llama2_tokenizer, pairs):
    """The bug this guards against: tokenising " " + answer on its own starts the answer with a space piece
    (SentencePiece: "▁", "▁The") where the benchmark's joint string "[/INST]The" gives "The"."""
    tokenizer, sp = llama2_tokenizer
    question, answer = next((q, a) for q, a in pairs if a.startswith("The "))
    _, labels = encode_pair(tokenizer, TEMPLATES["llama2"], question, answer)
    answer_ids = [t for t in labels if t != IGNORE_INDEX][:-1]
    assert tokenizer.convert_ids_to_tokens(answer_ids[0]) == "The"
    assert tokenizer(" " + answer, add_special_tokens=False)["input_ids"] != answer_ids
    assert sp.encode(" " + answer, out_type=str)[:2] == ["▁", "▁The"]


def test_chat_template_equals_open_unlearning_with_system_prompt_and_date(llama2_tokenizer, pairs):
    tokenizer, _ = llama2_tokenizer
    chat = type(tokenizer).from_pretrained(tokenizer.name_or_path)
    chat.chat_template = LLAMA3_LIKE
    template = TEMPLATES["llama3"]
    assert detect_template(chat, "llama")[0] == "llama3"
    for question, answer in pairs:
        ids, labels = encode_pair(chat, template, question, answer)
        expected_ids, expected_labels, expected_prompt = open_unlearning_encoding(chat, LLAMA3_ARGS, question, answer)
        assert (ids, labels) == (expected_ids, expected_labels)
        assert prompt_ids(chat, template, question) == expected_prompt == ids[: len(expected_prompt)]
    text = chat.decode(ids)
    assert "system<|end_header_id|>\n\nToday Date: 10 Apr 2025\n\nYou are a helpful assistant.</s>" in text
    assert text.endswith(f"assistant<|end_header_id|>\n\n{answer}</s>") and ids.count(chat.eos_token_id) == 3


def test_detection(llama2_tokenizer):
    tokenizer, _ = llama2_tokenizer
    assert detect_template(tokenizer, "llama")[0] == "llama2"
    assert detect_template(tokenizer, "phi")[0] == "phi"
    with pytest.raises(ValueError, match="cannot tell the prompt template of a gpt2 model .* pass --template"):
        detect_template(tokenizer, "gpt2")
    chatml = type(tokenizer).from_pretrained(tokenizer.name_or_path)
    chatml.chat_template = "{% for m in messages %}<|im_start|>{{ m['content'] }}{% endfor %}"
    assert detect_template(chatml, "qwen2")[0] == "chat-system"
    chatml.chat_template = "{% for m in messages %}[INST] <<SYS>>{{ m['content'] }}{% endfor %}"
    assert detect_template(chatml, "llama")[0] == "llama2"
    chatml.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    assert detect_template(chatml, "gemma")[0] == "chat"


def test_templates_that_contradict_the_tokenizer_are_refused(llama2_tokenizer):
    tokenizer, _ = llama2_tokenizer
    with pytest.raises(ValueError, match="template llama3 uses the tokenizer's chat template but m has none"):
        check_template(TEMPLATES["llama3"], tokenizer, "m")
    chat = type(tokenizer).from_pretrained(tokenizer.name_or_path)
    chat.chat_template = LLAMA3_LIKE
    for name in ("llama2", "phi"):
        with pytest.raises(ValueError, match=f"template {name} contradicts the chat template of m's tokenizer; use"):
            check_template(TEMPLATES[name], chat, "m")
    check_template(TEMPLATES["chat"], chat, "m")  # the tokenizer's own template always fits
    chat.chat_template = "{% for m in messages %}<|im_start|>{{ m['content'] }}{% endfor %}"
    with pytest.raises(ValueError, match="template llama3 contradicts"):
        check_template(TEMPLATES["llama3"], chat, "m")
    assert isinstance(TEMPLATES["llama2"], Template)
