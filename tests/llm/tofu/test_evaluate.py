"""Batched TOFU evaluation: equal to one item at a time, the open-unlearning layout, forget-quality references."""

import json

import numpy as np
import pytest
import torch

from simnpo.llm.templates import TEMPLATES
from simnpo.llm.tofu import evaluate as E
from simnpo.llm.tofu import reference as R
from simnpo.llm.tofu.data import encode_qa, load_tofu
from simnpo.llm.tofu.metrics import UTILITY_KEYS
from simnpo.losses import sequence_logprobs

QUICK = E.TofuEvalConfig(max_new_tokens=6, batch_size=16, generation_batch_size=16, template="llama2")
LLAMA2 = TEMPLATES["llama2"]


def test_batched_scores_equal_one_item_at_a_time_and_the_hand_computed_loss(tiny_model, tokenizer, tofu_folder):
    rows = load_tofu(tofu_folder, "forget10_perturbed")[:6]
    questions = [r["question"] for r in rows]
    answers = [[r["answer"], r["paraphrased_answer"], *r["perturbed_answer"]] for r in rows]
    batched = E.score_answers(tiny_model, tokenizer, LLAMA2, questions, answers, batch_size=16)
    single = E.score_answers(tiny_model, tokenizer, LLAMA2, questions, answers, batch_size=1)
    assert np.allclose(batched["avg_loss"], single["avg_loss"], atol=1e-5)
    assert batched["em"] == single["em"] and batched["es"] == single["es"]
    assert [len(a) for a in batched["avg_loss"]] == [7] * 6
    one = encode_qa(tokenizer, LLAMA2, [questions[2]], [answers[2][3]])
    with torch.no_grad():
        logps, n = sequence_logprobs(tiny_model(input_ids=one.input_ids).logits, one.labels)
    assert batched["avg_loss"][2][3] == pytest.approx((-logps / n).item(), abs=1e-5)


def test_batched_left_padded_generation_equals_one_at_a_time(tiny_model, tokenizer, tofu_folder):
    questions = [r["question"] for r in load_tofu(tofu_folder, "world_facts_perturbed")[:5]]
    questions[1] = "A much longer question than the others, to force left padding in the batch?"
    batched = E.generate_answers(tiny_model, tokenizer, questions, QUICK)
    single = [E.generate_answers(tiny_model, tokenizer, [q], QUICK)[0] for q in questions]
    assert batched == single and all(isinstance(g, str) for g in batched)


def test_original_protocol_counts_the_prompt_in_200_tokens(tiny_model, tokenizer, monkeypatch):
    config = E.TofuEvalConfig(protocol="original", max_new_tokens=50, template="llama2")
    prompt_len = len(tokenizer("[INST] Where? [/INST]")["input_ids"])
    monkeypatch.setattr(E, "ORIGINAL_MAX_LENGTH", prompt_len + 3)
    (text,) = E.generate_answers(tiny_model, tokenizer, ["Where?"], config)
    assert len(tokenizer(text, add_special_tokens=False)["input_ids"]) <= 4


@pytest.fixture(scope="module")
def results(tiny_model, tokenizer, tofu_folder):
    return E.evaluate_tofu(tiny_model, tokenizer, str(tofu_folder), QUICK)


def test_results_follow_the_open_unlearning_layout(results):
    for key in (
        "forget_Q_A_Prob",
        "forget_Q_A_PARA_Prob",
        "forget_Q_A_PERT_Prob",
        "forget_truth_ratio",
        "forget_Q_A_ROUGE",
        "exact_memorization",
        "extraction_strength",
        *UTILITY_KEYS,
    ):
        assert set(results[key]) >= {"agg_value", "value_by_index"}, key
    assert len(results["forget_truth_ratio"]["value_by_index"]) == 80
    assert len(results["forget_Q_A_PERT_Prob"]["value_by_index"]["0"]["prob"]) == 5
    assert set(results["forget_Q_A_ROUGE"]["value_by_index"]["0"]) >= {"rougeL_recall", "generation", "ground_truth"}
    # every aggregate is the mean of its per-item values
    probs = [v["prob"] for v in results["retain_Q_A_Prob"]["value_by_index"].values()]
    assert results["retain_Q_A_Prob"]["agg_value"] == pytest.approx(np.mean(probs))
    ratios = np.array([v["score"] for v in results["ra_Truth_Ratio"]["value_by_index"].values()])
    assert results["ra_Truth_Ratio"]["agg_value"] == pytest.approx(np.mean(np.maximum(0, 1 - ratios)))
    nine = [results[k]["agg_value"] for k in UTILITY_KEYS]
    expected = 0.0 if min(nine) == 0 else len(nine) / sum(1 / x for x in nine)  # an untrained model's ROUGE is 0
    assert results["model_utility"]["agg_value"] == pytest.approx(expected)
    assert results["forget_quality"]["agg_value"] is None and "retain" in results["forget_quality"]["reason"]
    assert results["_meta"] == {
        "split": "forget10",
        "protocol": "open-unlearning",
        "template": "llama2",
        "forget_items": 80,
    }


def test_forget_quality_against_itself_is_one_and_sizes_must_match(tiny_model, tokenizer, tofu_folder, results):
    own = [v["score"] for v in results["forget_truth_ratio"]["value_by_index"].values()]
    again = E.evaluate_tofu(tiny_model, tokenizer, str(tofu_folder), QUICK, retain_ratios=own)
    assert again["forget_quality"]["agg_value"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="hold 79 forget items but forget10 has 80"):
        E.evaluate_tofu(tiny_model, tokenizer, str(tofu_folder), QUICK, retain_ratios=own[:-1])


def test_retain_results_from_ours_and_open_unlearning(tmp_path, results):
    ours = tmp_path / "ours.json"
    ours.write_text(json.dumps(results))
    reference = R.retain_reference(ours, "forget10")
    assert reference.ratios == [results["forget_truth_ratio"]["value_by_index"][str(i)]["score"] for i in range(80)]
    assert reference.mia_auc == results["mia_min_k"]["agg_value"]  # privleak's reference
    with pytest.raises(ValueError, match="holds retain-model results for forget10, not forget05"):
        R.retain_reference(ours, "forget05")
    theirs = tmp_path / "TOFU_EVAL.json"  # open-unlearning: no _meta, keys in any order
    theirs.write_text(
        json.dumps(
            {
                "forget_truth_ratio": {
                    "agg_value": 0.5,
                    "value_by_index": {"1": {"score": 0.2}, "0": {"score": 0.1}, "10": {"score": 0.3}},
                }
            }
        )
    )
    assert R.retain_reference(theirs, "forget01") == R.TofuReference([0.1, 0.2, 0.3], None)  # no AUC: 0.5 used
    # every file records its protocol (open-unlearning's own files are its protocol's); another one is refused
    assert results["_meta"]["protocol"] == "open-unlearning"
    with pytest.raises(ValueError, match="made under the open-unlearning protocol, not attend-all; evaluate the"):
        R.retain_reference(theirs, "forget01", "attend-all")
    ours.write_text(json.dumps({**results, "_meta": {**results["_meta"], "protocol": "attend-all"}}))
    with pytest.raises(ValueError, match="made under the attend-all protocol, not open-unlearning"):
        R.retain_reference(ours, "forget10")
    with pytest.raises(ValueError, match="not found"):
        R.retain_reference(tmp_path / "none.json", "forget10")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="has no forget_truth_ratio.value_by_index"):
        R.retain_reference(tmp_path / "bad.json", "forget10")


@pytest.mark.parametrize(
    "kwargs, message", [({"split": "forget20"}, "unknown TOFU split"), ({"protocol": "tofu"}, "unknown protocol")]
)
def test_bad_eval_configs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        E.TofuEvalConfig(**kwargs)


def test_with_tag_templates_the_open_unlearning_mask_changes_no_number(tiny_model, tokenizer, tofu_folder):
    """With pad = EOS (``--pad-token eos``) and the llama2 tags, open-unlearning's mask hides only each row's final
    EOS, which no labelled logit depends on, and the prompts hold no EOS: both protocols give the same numbers up to
    open-unlearning's float32 loss computation (docs/conventions.md)."""
    eos_pad = type(tokenizer).from_pretrained(tokenizer.name_or_path)
    eos_pad.pad_token = eos_pad.eos_token
    rows = load_tofu(tofu_folder, "forget10_perturbed")[:4]
    questions = [r["question"] for r in rows]
    answers = [[r["answer"], *r["perturbed_answer"]] for r in rows]
    hidden = E.score_answers(tiny_model, eos_pad, LLAMA2, questions, answers, batch_size=8, open_unlearning=True)
    attended = E.score_answers(tiny_model, eos_pad, LLAMA2, questions, answers, batch_size=8)
    assert np.allclose(hidden["avg_loss"], attended["avg_loss"], atol=1e-5)
    assert hidden["em"] == attended["em"] and hidden["es"] == attended["es"]
