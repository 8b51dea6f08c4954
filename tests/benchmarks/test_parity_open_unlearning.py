"""The parity benchmark's honesty: the model folder open-unlearning reads (transformers 4) carries every setting
transformers 5 saved elsewhere, and a probe that differs stops the comparison. (The benchmark itself runs
open-unlearning in its own environment, outside CI; README, "Parity with open-unlearning".)"""

import importlib.util
import json
from pathlib import Path

import pytest

PATH = Path(__file__).parents[2] / "benchmarks" / "parity_open_unlearning.py"
spec = importlib.util.spec_from_file_location("parity_open_unlearning", PATH)
P = importlib.util.module_from_spec(spec)
spec.loader.exec_module(P)


def test_rope_and_dtype_fields_are_written_as_transformers_4_reads_them():
    v5 = {
        "model_type": "llama",
        "dtype": "float32",
        "rope_parameters": {"rope_theta": 100000.0, "rope_type": "default"},
    }
    assert P.transformers4_config(v5) == {"model_type": "llama", "torch_dtype": "float32", "rope_theta": 100000.0}
    scaled = {"rope_parameters": {"rope_theta": 500000.0, "rope_type": "llama3", "factor": 8.0}}
    assert P.transformers4_config(scaled) == {
        "rope_theta": 500000.0,
        "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "type": "llama3"},
    }


def test_the_tokenizer_class_and_chat_template_are_where_transformers_4_looks():
    v5 = {"backend": "tokenizers", "tokenizer_class": "TokenizersBackend", "eos_token": "<|im_end|>"}
    assert P.transformers4_tokenizer_config(v5, "{{ messages }}") == {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "eos_token": "<|im_end|>",
        "chat_template": "{{ messages }}",
    }


def test_the_copy_of_a_saved_chat_model_carries_rope_theta_and_its_chat_template(tokenizer, tmp_path):
    from simnpo.llm.models import TinyLlamaConfig, tiny_llama

    chat = type(tokenizer).from_pretrained(tokenizer.name_or_path)
    chat.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    model = tiny_llama(TinyLlamaConfig(hidden_size=16, intermediate_size=32, layers=1, heads=2), chat, seed=0)
    model.config.rope_parameters = {"rope_theta": 100000.0, "rope_type": "default"}
    model.save_pretrained(tmp_path / "model")
    chat.save_pretrained(tmp_path / "model")
    assert (tmp_path / "model" / "chat_template.jinja").is_file()  # transformers 5 keeps it apart
    copy = Path(P.transformers4_copy(str(tmp_path / "model"), tmp_path / "copy"))
    config = json.loads((copy / "config.json").read_text())
    assert config["rope_theta"] == 100000.0 and "rope_parameters" not in config
    assert json.loads((copy / "tokenizer_config.json").read_text())["chat_template"] == chat.chat_template
    raw = Path(P.transformers4_copy(str(tmp_path / "model"), tmp_path / "raw", translate_config=False))
    assert "rope_theta" not in json.loads((raw / "config.json").read_text())  # what transformers 4 misreads


def probe(logprobs, ids=(1, 2, 3), theta=100000.0):
    return {"input_ids": list(ids), "labels": [-100, 2, 3], "logprobs": logprobs, "config": {"rope_theta": theta}}


def test_the_probe_refuses_another_model_or_another_encoding():
    ours = probe([-1.0, -2.0])
    assert P.probe_problems(ours, probe([-1.00001, -2.0]), {"rope_theta": 100000.0}, 1e-4) == []
    problems = P.probe_problems(ours, probe([-1.2, -2.0], theta=10000.0), {"rope_theta": 100000.0}, 1e-4)
    assert problems == [
        "rope_theta is 10000.0 there, 100000.0 here",
        "the probe's token log-probabilities differ by up to 2.00e-01 (> 0.0001)",
    ]
    assert P.probe_problems(ours, probe([-1.0, -2.0], ids=(1, 2, 4)), {}, 1e-4) == [
        "the probe pair is encoded differently"
    ]


def test_differences_are_relative_per_number_and_absolute_for_losses():
    ours = {"value_by_index": {"0": {"prob": 0.5, "avg_loss": 0.7}, "1": {"prob": [0.2, 0.4]}}}
    theirs = {"value_by_index": {"0": {"prob": 0.5005, "avg_loss": 0.7001}, "1": {"prob": [0.2, 0.4]}}}
    relative, loss = P.differences(ours, theirs)
    assert relative == pytest.approx(0.0005 / 0.5005) and loss == pytest.approx(1e-4)
