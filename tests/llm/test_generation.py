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


def generate_paths(model, tokenizer, prompts, new, monkeypatch, **kwargs):
    """greedy_generate through our own loop and through transformers' generate (as for a model whose generation
    config changes the greedy choice)."""
    import simnpo.llm.generation as G

    ours = greedy_generate(model, tokenizer, prompts, new, **kwargs)
    with monkeypatch.context() as patch:
        patch.setattr(G, "plain_greedy", lambda model: False)
        theirs = greedy_generate(model, tokenizer, prompts, new, **kwargs)
    return ours, theirs


@pytest.mark.parametrize("mask_pad_tokens", [False, True])
def test_our_greedy_loop_equals_transformers_generate(
    trained_model, tokenizer, tofu_folder, monkeypatch, mask_pad_tokens
):
    """Rows of different lengths leave the batch (and its cache) as they finish; with open-unlearning's mask a pad
    token inside a prompt is hidden and later positions count only attended tokens, as generate counts them."""
    from simnpo.llm.templates import TEMPLATES, prompt_ids
    from simnpo.llm.tofu.data import load_tofu

    rows = load_tofu(tofu_folder, "forget10")[:4] + load_tofu(tofu_folder, "retain90")[:4]
    prompts = [prompt_ids(tokenizer, TEMPLATES["llama2"], r["question"]) for r in rows]
    pad = tokenizer.pad_token_id
    prompts = [p[:k] + [pad] + p[k:] for k, p in zip(range(2, 10), prompts)]  # pad-valued tokens inside prompts
    kwargs = {"batch_size": 8, "mask_pad_tokens": mask_pad_tokens}
    ours, theirs = generate_paths(trained_model, tokenizer, prompts, 24, monkeypatch, **kwargs)
    assert ours == theirs
    assert len({len(text) for text in ours}) > 1  # premise: rows of different lengths
    hidden = greedy_generate(trained_model, tokenizer, prompts, 24, batch_size=8, mask_pad_tokens=True)
    assert hidden != greedy_generate(trained_model, tokenizer, prompts, 24, batch_size=8)  # premise: the mask matters


def test_rows_leave_the_batch_when_they_stop(model_and_tokenizer):
    from simnpo.llm.generation import greedy_tokens

    model, tokenizer = model_and_tokenizer
    ids = torch.tensor([tokenizer(TEXTS[0])["input_ids"]] * 2)
    (a, b) = greedy_tokens(model, ids, torch.ones_like(ids), 10, [-1], lambda tokens: len(tokens) == 3)
    assert len(a) == len(b) == 3  # a stop condition ends a row's tokens
    first = greedy_tokens(model, ids[:1], torch.ones_like(ids[:1]), 10, [-1], lambda tokens: False)[0]
    stop = first[4]
    (row,) = greedy_tokens(model, ids[:1], torch.ones_like(ids[:1]), 10, [stop], lambda tokens: False)
    assert row == first[: first.index(stop) + 1]  # a stop id ends it, kept as generate keeps it


def test_a_generation_config_that_changes_greedy_choices_runs_generate(model_and_tokenizer):
    from simnpo.llm.generation import plain_greedy

    model, _ = model_and_tokenizer
    assert plain_greedy(model)
    penalised = type(model)(model.config)
    penalised.generation_config.repetition_penalty = 1.05  # Qwen2.5-Instruct's
    assert not plain_greedy(penalised)


def test_decoding_applies_transformers_4s_clean_up(model_and_tokenizer):
    from simnpo.llm.models import decode

    _, tokenizer = model_and_tokenizer
    ids = tokenizer("Ada 's book , she said . Is n't it ?", add_special_tokens=False)["input_ids"]
    assert decode(tokenizer, ids) == "Ada's book, she said. Isn't it?"
