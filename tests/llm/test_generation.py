"""Evaluation helpers: left-padded batched generation and right-padded text log-probabilities equal one at a time,
and the hand computation."""

import pytest
import torch

from simnpo.llm.generation import greedy_generate, shard_map, text_token_logprobs
from simnpo.llm.models import load_model, load_tokenizer

TEXTS = ["Rain fell in Quessen.", "The mayor of a small town announced a new bridge in March.", "Who?"]


@pytest.fixture(scope="module")
def model_and_tokenizer(small_muse):
    _, folder = small_muse
    return load_model(folder), load_tokenizer(folder)


def test_batched_greedy_generation_equals_one_at_a_time(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    prompts = tokenizer(TEXTS)["input_ids"]
    batched = greedy_generate(model, tokenizer, prompts, 6, batch_size=3)
    assert batched == [greedy_generate(model, tokenizer, [p], 6, batch_size=1)[0] for p in prompts]
    # a callable length sees the padded prompt width (TOFU's original protocol)
    widths = []
    greedy_generate(model, tokenizer, prompts, lambda w: widths.append(w) or 2, batch_size=3)
    assert widths == [max(len(p) for p in prompts)]


def test_stop_strings_end_generation_early_without_changing_the_text_before_them(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    prompts = tokenizer(TEXTS)["input_ids"]
    full = greedy_generate(model, tokenizer, prompts, 16, batch_size=1)
    stop = full[0][len(full[0]) // 3 :][:2]  # two characters from the first third of the first continuation
    assert stop and full[0].index(stop) + len(stop) < len(full[0])  # premise: text follows the stop string
    stopped = greedy_generate(model, tokenizer, prompts, 16, batch_size=1, stop_strings=[stop])
    before = lambda text: text[: text.index(stop)] if stop in text else text  # noqa: E731
    assert [before(t) for t in stopped] == [before(t) for t in full]
    assert len(stopped[0]) < len(full[0])  # it stopped early
    # rows never reaching the stop string run their whole length; a batch runs until every row has stopped
    assert all(t == f for t, f in zip(stopped, full) if stop not in f)
    batched = greedy_generate(model, tokenizer, prompts, 16, batch_size=3, stop_strings=[stop])
    assert [before(t) for t in batched] == [before(t) for t in full]


def test_text_log_probabilities_batched_equal_the_hand_computation(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    batched = text_token_logprobs(model, tokenizer, TEXTS, batch_size=3)
    for text, values in zip(TEXTS, batched):
        ids = torch.tensor([tokenizer(text)["input_ids"]])
        with torch.no_grad():
            logp = model(input_ids=ids).logits[0, :-1].log_softmax(-1)
        expected = logp.gather(-1, ids[0, 1:, None])[:, 0]
        assert values == pytest.approx(expected.tolist(), abs=1e-5)
    cut = text_token_logprobs(model, tokenizer, TEXTS[1:2], batch_size=1, max_length=5)
    assert len(cut[0]) == 4  # cut to max_length tokens, BOS included, so 4 predicted
    # by default whole texts, however long (MUSE scores PrivLeak texts uncut; open-unlearning cuts at 2048)
    long_text = " ".join(["The mayor of a small town announced a new bridge in March."] * 250)
    n = len(tokenizer(long_text)["input_ids"])
    assert n > 2048 and len(text_token_logprobs(model, tokenizer, [long_text], batch_size=1)[0]) == n - 1


def test_shard_map_on_one_process_is_the_function():
    assert shard_map(lambda xs: [x * 2 for x in xs], [1, 2, 3]) == [2, 4, 6]
