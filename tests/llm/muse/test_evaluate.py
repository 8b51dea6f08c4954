"""The MUSE evaluator: the benchmark's metric names and layout, each metric as docs/conventions.md defines it,
computed from the model's own generations and log-probabilities."""

import numpy as np
import pytest

from simnpo.llm.generation import greedy_generate, text_token_logprobs
from simnpo.llm.models import load_model, load_tokenizer
from simnpo.llm.muse import evaluate as E
from simnpo.llm.muse import metrics as M
from simnpo.llm.muse.data import load_muse

QUICK = E.MuseEvalConfig(verbmem_tokens=8, knowmem_tokens=6, batch_size=4)


@pytest.fixture(scope="module")
def evaluated(small_muse):
    data, folder = small_muse
    model, tokenizer = load_model(folder), load_tokenizer(folder)
    steps = []
    results = E.evaluate_muse(model, tokenizer, str(data), QUICK, retrain_auc=0.5, advance=steps.append)
    return data, model, tokenizer, results, steps


def test_layout_and_aggregates(evaluated):
    data, _, _, results, steps = evaluated
    assert steps == [1, 1, 1, 1]  # one progress step per part: VerbMem, KnowMem D_f and D_r, PrivLeak
    assert set(results) == {"verbmem_f", "knowmem_f", "knowmem_r", "privleak", "_meta"}
    for key, n in (("verbmem_f", 16), ("knowmem_f", 16), ("knowmem_r", 16)):  # 4 articles × 4
        items = results[key]["value_by_index"]
        assert len(items) == n
        assert results[key]["agg_value"] == pytest.approx(100 * np.mean([v["rougeL_f1"] for v in items.values()]))
    summary = E.muse_summary(results)
    assert summary["privleak"] == pytest.approx((summary["privleak_auc"] - 0.5) / 0.5 * 100)
    assert summary["corpus"] == "news"


def test_verbmem_scores_the_generation_against_the_cut_reference(evaluated):
    data, model, tokenizer, results, _ = evaluated
    row = load_muse(data, "verbmem", "forget")[1]
    (generation,) = greedy_generate(model, tokenizer, [tokenizer(row["prompt"])["input_ids"]], 8, batch_size=1)
    entry = results["verbmem_f"]["value_by_index"]["1"]
    reference = M.truncate_tokens(tokenizer, row["gt"], 8)
    assert entry["generation"] == generation and entry["gt"] == reference
    assert (
        len(tokenizer(reference, add_special_tokens=False)["input_ids"])
        == 7
        < len(tokenizer(row["gt"])["input_ids"])  # BOS + 7
    )
    assert entry["rougeL_f1"] == pytest.approx(M.rouge_l_f1([reference], [generation])[0])


def test_knowmem_asks_with_the_examples_and_cuts_at_stop_strings(evaluated):
    data, model, tokenizer, results, _ = evaluated
    row, icl = load_muse(data, "knowmem", "retain_qa")[0], load_muse(data, "knowmem", "retain_qa_icl")
    prompt = M.knowmem_prompt([(r["question"], r["answer"]) for r in icl], row["question"])
    (raw,) = greedy_generate(model, tokenizer, [tokenizer(prompt)["input_ids"]], 6, batch_size=1)
    entry = results["knowmem_r"]["value_by_index"]["0"]
    assert entry["generation"] == M.cut_at_stop(raw) and entry["answer"] == row["answer"]
    assert not any(stop in entry["generation"] for stop in M.STOP_STRINGS)


def test_privleak_uses_min_k_scores_of_forget_against_holdout(evaluated):
    data, model, tokenizer, results, _ = evaluated
    texts = [r["text"] for r in load_muse(data, "privleak", "holdout")]
    expected = [M.min_k_score(v, 0.4) for v in text_token_logprobs(model, tokenizer, texts, 4)]
    entry = results["privleak"]
    assert entry["holdout_scores"] == pytest.approx(expected)
    assert entry["auc"] == pytest.approx(M.privleak_auc(entry["forget_scores"], entry["holdout_scores"]))


def test_privleak_sign_a_memoriser_is_strongly_negative_and_no_reference_gives_none():
    memoriser = E.privleak_entry(forget=[0.1, 0.2, 0.3], holdout=[2.0, 3.0, 4.0], retrain_auc=0.5)
    assert memoriser["auc"] == 0.0 and memoriser["agg_value"] == -100.0
    assert E.privleak_entry([1.0, 2.0], [1.5, 2.5], retrain_auc=None)["agg_value"] is None


def test_config_is_validated():
    with pytest.raises(ValueError, match="unknown MUSE corpus 'wiki'"):
        E.MuseEvalConfig(corpus="wiki")
    with pytest.raises(ValueError, match="min_k"):
        E.MuseEvalConfig(min_k=0)


def test_prompts_ending_in_a_space_tokenise_as_a_prefix_of_their_text(evaluated):
    _, _, tokenizer, _, _ = evaluated  # trained with space_ends_word, as the built-in mini-MUSE tokenizer
    text = "Question: Who announced a new bridge in Quessen?\nAnswer: Holfa Morbeldar"
    prompt = text[: text.index("Holfa")]
    ids = tokenizer(prompt)["input_ids"]
    assert tokenizer(text)["input_ids"][: len(ids)] == ids and tokenizer.decode(ids, skip_special_tokens=True) == prompt
