"""TOFU data loading from a local folder, formatting and encoding."""

import json

import pytest
import torch

from simnpo.llm.data import pad_right, padded, require_pad_token
from simnpo.llm.templates import TEMPLATES, Template, encode_pair
from simnpo.llm.tofu.data import encode_prompts, encode_qa, load_tofu

LLAMA2 = TEMPLATES["llama2"]


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


def test_a_malformed_file_is_one_line_naming_file_and_line(tmp_path, tofu_folder, small_muse):
    """Found while trying the CLI: `datasets` printed three lines, two of them its own logs, and never said the file
    was not JSON."""
    import shutil

    from typer.testing import CliRunner

    from simnpo.cli import app

    data = tmp_path / "data"
    shutil.copytree(tofu_folder, data)
    lines = (data / "forget10_perturbed.json").read_text().splitlines()
    (data / "forget10_perturbed.json").write_text("\n".join([lines[0], lines[1][:-7], *lines[2:]]) + "\n")
    with pytest.raises(ValueError, match=r"forget10_perturbed.json line 2 is not valid JSON \("):
        load_tofu(data, "forget10_perturbed")
    model = small_muse[1]  # any tiny Llama with its tokenizer
    args = ["eval", "--bench", "tofu", "--model", str(model), "--data", str(data), "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert "forget10_perturbed.json line 2 is not valid JSON" in result.output and not (tmp_path / "out").exists()


def test_hub_failure_is_one_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match="could not load TOFU config 'forget10' from 'nobody/no-such-tofu'"):
        load_tofu("nobody/no-such-tofu", "forget10")


def test_llama2_joins_prompt_and_answer_into_one_string_and_appends_one_eos(tokenizer):
    batch = encode_qa(tokenizer, LLAMA2, ["Who wrote it?", "Where?"], ["Nobody wrote it.", "Here."])
    full = tokenizer("[INST] Who wrote it? [/INST]Nobody wrote it.")["input_ids"]
    prompt = tokenizer("[INST] Who wrote it? [/INST]")["input_ids"]
    n = len(full) + 1
    assert prompt[0] == tokenizer.bos_token_id
    assert batch.input_ids[0, :n].tolist() == full + [tokenizer.eos_token_id]
    assert batch.labels[0, :n].tolist() == [-100] * len(prompt) + full[len(prompt) :] + [tokenizer.eos_token_id]
    # the shorter row is padded and its padding masked
    short = int(batch.attention_mask[1].sum())
    assert (batch.labels[1, short:] == -100).all() and (batch.input_ids[1, short:] == tokenizer.pad_token_id).all()
    assert encode_prompts(tokenizer, LLAMA2, ["Who wrote it?"]) == [prompt]


def test_chat_template_encodes_the_conversation_with_system_prompt_and_date(tokenizer):
    templated = type(tokenizer).from_pretrained(tokenizer.name_or_path)
    templated.chat_template = (
        "{{ bos_token }}{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{{ eos_token }}{% endfor %}"
        "{% if date_string is defined %}[{{ date_string }}]{% endif %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}"
    )
    template = Template("t", "test", chat=True, system_prompt="Be brief.", date_string="1 Jan 2000")
    batch = encode_qa(templated, template, ["Who?"], ["Me."])
    text = templated.decode(batch.input_ids[0])
    assert text == "<s><system>Be brief.</s><user>Who?</s><assistant>Me.</s>[1 Jan 2000]</s>"
    (prompt,) = encode_prompts(templated, template, ["Who?"])
    assert templated.decode(prompt) == "<s><system>Be brief.</s><user>Who?</s>[1 Jan 2000]<assistant>"
    assert (batch.input_ids[0] == templated.bos_token_id).sum() == 1  # no second BOS from the tokenizer
    assert batch.labels[0, -1] == templated.eos_token_id


def test_an_answer_ending_in_eos_gets_no_second_one(tokenizer):
    templated = type(tokenizer).from_pretrained(tokenizer.name_or_path)
    templated.chat_template = "{% for m in messages %}{{ m['content'] }}{{ eos_token }}{% endfor %}"
    ids, labels = encode_pair(templated, TEMPLATES["chat"], "Who?", "Me.")
    assert ids[-1] == templated.eos_token_id and ids[-2] != templated.eos_token_id
    assert labels[-1] == templated.eos_token_id


def test_truncation_cuts_before_the_eos_and_pad_token_check(tokenizer):
    batch = encode_qa(tokenizer, LLAMA2, ["Who?"], ["A very long answer " * 20], max_length=16)
    assert batch.input_ids.shape[1] == 17  # cut to 16 tokens, then the EOS, as open-unlearning does
    assert batch.input_ids[0, -1] == tokenizer.eos_token_id
    nopad = type(tokenizer).from_pretrained(tokenizer.name_or_path)
    nopad.pad_token = None
    with pytest.raises(ValueError, match="has no pad token; pass --pad-token"):
        require_pad_token(nopad, "m")
    one = encode_qa(tokenizer, LLAMA2, ["Who?"], ["Me."])
    assert torch.equal(one.labels[:, -1], torch.tensor([tokenizer.eos_token_id]))


def test_an_unreachable_hub_fails_at_once(monkeypatch):
    import simnpo.llm.models as models

    monkeypatch.setattr(models, "hub_reachable", lambda: False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(ValueError, match="cannot reach the Hugging Face Hub for dataset 'locuslab/TOFU'"):
        load_tofu("locuslab/TOFU", "forget10")
    with pytest.raises(ValueError, match="cannot reach the Hugging Face Hub for 'nobody/model'"):
        models.check_source("nobody/model", "model")


def test_open_unlearnings_mask_hides_pad_valued_tokens_inside_a_row_and_keeps_its_length(tokenizer):
    pad = tokenizer.pad_token_id
    rows = [([1, 5, pad, 6, pad], [-100, -100, -100, 6, pad]), ([1, 7], [-100, 7])]
    hidden = pad_right(tokenizer, rows, mask_pad_tokens=True)
    assert hidden.attention_mask.tolist() == [[1, 1, 0, 1, 0], [1, 1, 0, 0, 0]]
    assert pad_right(tokenizer, rows).attention_mask.tolist() == [[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]
    assert hidden.input_ids[1].tolist() == [1, 7, pad, pad, pad] and hidden.labels[1].tolist() == [-100, 7] + [-100] * 3
    assert hidden.lengths.tolist() == [5, 2]
    assert hidden[1:].trimmed().input_ids.tolist() == [[1, 7]]  # trimmed by lengths, not by the mask
    assert hidden[:1].trimmed().input_ids.shape[1] == 5  # a hidden last token is still the row's


def test_the_tokenizer_pads_on_either_side_with_its_own_pad_token(llama2_tokenizer):
    from simnpo.llm.models import load_tokenizer

    tokenizer = load_tokenizer(llama2_tokenizer[0].name_or_path, "eos")  # a SentencePiece vocabulary, pad = EOS
    eos = tokenizer.eos_token_id
    left, mask = padded(tokenizer, [[1, 5], [1, 7, 8]], "left")
    assert left.tolist() == [[eos, 1, 5], [1, 7, 8]] and mask.tolist() == [[0, 1, 1], [1, 1, 1]]
    right, mask = padded(tokenizer, [[1, 5, eos], [1, 7, 8, 9]], "right", mask_pad_tokens=True)
    assert right.tolist() == [[1, 5, eos, eos], [1, 7, 8, 9]] and mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]
