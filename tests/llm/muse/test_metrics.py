"""MUSE metrics against hand-computed values."""

import pytest

from simnpo.llm.muse import metrics as M


def test_min_k_score_takes_the_floor_of_forty_percent_as_muse_does():
    # 5 tokens: int(5 × 0.4) = 2 lowest, -3 and -2 -> score 2.5
    assert M.min_k_score([-0.1, -3.0, -0.5, -2.0, -1.0]) == pytest.approx(2.5)
    # 7 tokens: int(7 × 0.4) = 2 (ceil would take 3: -3, -2, -1 -> 2.0)
    assert M.min_k_score([-0.1, -3.0, -0.5, -2.0, -1.0, -0.2, -0.3]) == pytest.approx(2.5)
    assert M.min_k_score([-1.0, -2.0], k=0.4) == pytest.approx(2.0)  # int(0.8) = 0 would be NaN: the lowest one
    assert M.min_k_score([-4.0, -1.0, -1.0], k=1.0) == pytest.approx(2.0)


def test_auc_direction_and_privleak_sign():
    memorised_forget, unseen_holdout = [0.1, 0.2, 0.3], [2.0, 2.5, 3.0]  # members: lower Min-K score
    assert M.privleak_auc(memorised_forget, unseen_holdout) == pytest.approx(0.0)
    assert M.privleak_auc(unseen_holdout, memorised_forget) == pytest.approx(1.0)  # over-unlearned
    # two ties of four pairs: AUC = (1 + 0.5 + 0.5 + 0) / 4 for forget [1, 2] and holdout [1, 2]
    assert M.privleak_auc([1.0, 2.0], [1.0, 2.0]) == pytest.approx(0.5)
    assert M.privleak(0.0, 0.4772) == pytest.approx(-100.0)  # under-unlearned: strongly negative
    assert M.privleak(0.4772, 0.4772) == 0.0
    assert M.privleak(1.0, 0.5) == pytest.approx(100.0)  # over-unlearned: strongly positive
    with pytest.raises(ValueError, match="retrain AUC must be > 0"):
        M.privleak(0.3, 0.0)


def test_rouge_l_f1_has_no_stemming():
    (f1,) = M.rouge_l_f1(["the cats are running"], ["a cat runs"])
    assert f1 == 0.0  # stemming would match cat/cats and run/running
    (f1,) = M.rouge_l_f1(["the cats are running home"], ["cats running home now"])
    precision, recall = 3 / 4, 3 / 5  # LCS = cats running home
    assert f1 == pytest.approx(2 * precision * recall / (precision + recall))


def test_stop_strings_cut_the_first_occurrence():
    assert M.cut_at_stop("Paris\n\nQuestion: next") == "Paris"
    assert M.cut_at_stop("Paris, France\nQuestion: more") == "Paris, France"
    assert M.cut_at_stop("Lyon Question: again") == "Lyon "
    assert M.cut_at_stop("no stop here") == "no stop here"


def test_knowmem_prompt_layout():
    prompt = M.knowmem_prompt([("Q1?", "A1."), ("Q2?", "A2.")], "Q3?")
    assert prompt == "Question: Q1?\nAnswer: A1.\n\nQuestion: Q2?\nAnswer: A2.\n\nQuestion: Q3?\nAnswer: "


def test_reference_cut_to_128_tokens_bos_counted(tokenizer):
    text = " ".join(f"word{i}" for i in range(400))
    cut = M.truncate_tokens(tokenizer, text, 128)
    assert tokenizer(text)["input_ids"][0] == tokenizer.bos_token_id
    assert len(tokenizer(cut, add_special_tokens=False)["input_ids"]) == 127  # MUSE's 128 ids hold the BOS
    assert text.startswith(cut.strip())
    assert M.truncate_tokens(tokenizer, "short text", 128) == "short text"
