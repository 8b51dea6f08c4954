"""TOFU data loading from a local folder, formatting and encoding."""

import json

import pytest
import torch

from simnpo.llm.tofu_data import encode_qa, format_prompt, load_tofu, require_pad_token


def test_loads_every_config_of_a_local_folder(tofu_folder):
    rows = load_tofu(tofu_folder, "forget10_perturbed")
    assert len(rows) == 80 and len(rows[0]["perturbed_answer"]) == 5
    assert len(load_tofu(tofu_folder, "real_authors_perturbed")[0]["perturbed_answer"]) == 3
    assert {"question", "answer"} <= set(load_tofu(tofu_folder, "retain90")[0])


def test_missing_file_and_missing_field_are_named(tmp_path, tofu_folder):
    with pytest.raises(ValueError, match="forget05_perturbed.json not found"):
        load_tofu(tmp_path, "forget05_perturbed")
    (tmp_path / "retain_perturbed.json").write_text(json.dumps({"question": "q", "answer": "a"}) + "\n")
    with pytest.raises(ValueError, match="item 0 has no field paraphrased_answer, perturbed_answer"):
        load_tofu(tmp_path, "retain_perturbed")
    with pytest.raises(ValueError, match="does not exist"):
        load_tofu(tmp_path / "nope", "forget10")


def test_hub_failure_is_one_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match="could not load TOFU config 'forget10' from 'nobody/no-such-tofu'"):
        load_tofu("nobody/no-such-tofu", "forget10")


def test_llama2_format_masks_the_prompt_and_appends_one_eos(tokenizer):
    assert format_prompt(tokenizer, "Who?") == "[INST] Who? [/INST]"
    batch = encode_qa(tokenizer, ["Who wrote it?", "Where?"], ["Nobody wrote it.", "Here."])
    prompt = tokenizer("[INST] Who wrote it? [/INST]")["input_ids"]
    answer = tokenizer(" Nobody wrote it.", add_special_tokens=False)["input_ids"]
    n = len(prompt) + len(answer) + 1
    assert prompt[0] == tokenizer.bos_token_id
    assert batch.input_ids[0, :n].tolist() == prompt + answer + [tokenizer.eos_token_id]
    assert batch.labels[0, :n].tolist() == [-100] * len(prompt) + answer + [tokenizer.eos_token_id]
    # the shorter row is padded and its padding masked
    short = int(batch.attention_mask[1].sum())
    assert (batch.labels[1, short:] == -100).all() and (batch.input_ids[1, short:] == tokenizer.pad_token_id).all()
    assert tokenizer.decode(batch.input_ids[0, len(prompt) : n - 1]) == " Nobody wrote it."


def test_chat_template_is_used_when_present(tokenizer):
    templated = type(tokenizer).from_pretrained(tokenizer.name_or_path)
    templated.chat_template = "{% for m in messages %}<s>USER: {{ m['content'] }} ASSISTANT:{% endfor %}"
    assert format_prompt(templated, "Who?") == "<s>USER: Who? ASSISTANT:"
    batch = encode_qa(templated, ["Who?"], ["Me."])
    assert batch.input_ids[0, 0] == templated.bos_token_id
    assert (batch.input_ids[0] == templated.bos_token_id).sum() == 1  # no second BOS from the tokenizer
    assert batch.labels[0, -1] == templated.eos_token_id


def test_truncation_and_pad_token_check(tokenizer):
    batch = encode_qa(tokenizer, ["Who?"], ["A very long answer " * 20], max_length=16)
    assert batch.input_ids.shape[1] == 16
    nopad = type(tokenizer).from_pretrained(tokenizer.name_or_path)
    nopad.pad_token = None
    with pytest.raises(ValueError, match="has no pad token; pass --pad-token"):
        require_pad_token(nopad, "m")
    assert torch.equal(encode_qa(tokenizer, ["Who?"], ["Me."]).labels[:, -1], torch.tensor([tokenizer.eos_token_id]))


def test_an_unreachable_hub_fails_at_once(monkeypatch):
    import simnpo.llm.models as models

    monkeypatch.setattr(models, "hub_reachable", lambda: False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(ValueError, match="cannot reach the Hugging Face Hub for dataset 'locuslab/TOFU'"):
        load_tofu("locuslab/TOFU", "forget10")
    with pytest.raises(ValueError, match="cannot reach the Hugging Face Hub for 'nobody/model'"):
        models.check_source("nobody/model", "model")
