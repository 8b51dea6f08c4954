"""Answers sharing a prompt scored against one pass over it: every labelled token's log-probability equals that of
its row scored whole, alone, with the same attention mask."""

import pytest
import torch

from simnpo.llm import scoring as S
from simnpo.llm.data import pad_right
from simnpo.llm.templates import TEMPLATES, encode_pair
from simnpo.losses import token_logprobs


def test_the_shared_prefix_stops_where_rows_part_or_labels_start():
    same_prompt = [([1, 2, 3, 4, 5], [-100, -100, -100, 4, 5]), ([1, 2, 3, 7], [-100, -100, -100, 7])]
    assert S.prefix_length(same_prompt) == 3
    parting = [([1, 2, 9, 4], [-100, -100, -100, 4]), ([1, 2, 8, 7], [-100, -100, -100, 7])]
    assert S.prefix_length(parting) == 2  # the answers' first words absorbed the prompt's last token
    assert S.prefix_length([([1, 2, 3], [-100, 2, 3])]) == 1


def test_groups_are_packed_longest_first_and_never_split():
    batches = S.group_batches([[0, 1, 2], [3], [4, 5]], [5, 5, 5, 9, 2, 2], batch_size=3)
    assert batches == [[1], [0], [2]]  # group 0 and 1 together would be 4 rows
    assert S.group_batches([[0, 1, 2, 3]], [1, 1, 1, 1], batch_size=2) == [[0]]  # a larger group alone


def whole_rows(model, rows, tokenizer, mask_pad_tokens):
    out = []
    for row in rows:
        batch = pad_right(tokenizer, [row], mask_pad_tokens)
        with torch.no_grad():
            logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        logp, mask = token_logprobs(logits, batch.labels)
        out.append(logp[mask])
    return out


def shared(model, rows, owner, tokenizer, mask_pad_tokens, batch_size=5):
    out = [None] * len(rows)
    for idx, logits, labels in S.shared_prefix_logits(model, rows, owner, batch_size, tokenizer, mask_pad_tokens):
        logp, mask = token_logprobs(logits, labels)
        for j, i in enumerate(idx.tolist()):
            out[i] = logp[j][mask[j]]
    return out


@pytest.mark.parametrize("mask_pad_tokens", [False, True])
@pytest.mark.parametrize("template", ["llama2", "phi"])
def test_shared_prefix_scores_equal_whole_rows_on_a_sentencepiece_vocabulary(
    llama2_tokenizer, template, mask_pad_tokens
):
    """With the phi tags' "Answer: " the answers' first words take the prompt's last "▁", so a group's rows part
    before their labels start; with pad = EOS the open-unlearning mask hides each row's final EOS."""
    from simnpo.llm.models import TinyLlamaConfig, load_tokenizer, tiny_llama

    tokenizer = load_tokenizer(llama2_tokenizer[0].name_or_path, "eos")  # as --pad-token eos
    model = tiny_llama(
        TinyLlamaConfig(hidden_size=32, intermediate_size=64, layers=2, heads=2), tokenizer, seed=1
    ).eval()
    items = [
        ("Who wrote The Glass City?", ["Ada Lorn wrote it.", "It was written by Ada Lorn.", "Nobody did."]),
        ("Where?", ["Rusk", "In the town of Virel, long ago."]),
    ]
    rows, owner = [], []
    for i, (question, answers) in enumerate(items):
        for answer in answers:
            rows.append(encode_pair(tokenizer, TEMPLATES[template], question, answer))
            owner.append(i)
    if template == "phi":
        assert S.prefix_length(rows[:3]) < min(
            labels.index(next(t for t in labels if t != -100)) for _, labels in rows[:3]
        )
    assert tokenizer.pad_token_id == tokenizer.eos_token_id
    expected = whole_rows(model, rows, tokenizer, mask_pad_tokens)
    for got, want in zip(shared(model, rows, owner, tokenizer, mask_pad_tokens), expected):
        assert torch.allclose(got, want, atol=1e-5)


def test_a_cache_that_cannot_select_rows_scores_rows_whole(tiny_model, tokenizer, monkeypatch):
    from transformers import DynamicCache

    rows = [encode_pair(tokenizer, TEMPLATES["llama2"], "Who?", a) for a in ("Me.", "You, surely.", "Nobody")]
    expected = shared(tiny_model, rows, [0, 0, 0], tokenizer, False)
    for owner_class in DynamicCache.__mro__:
        if "batch_select_indices" in vars(owner_class):
            monkeypatch.delattr(owner_class, "batch_select_indices")
    assert not hasattr(DynamicCache(), "batch_select_indices")
    for got, want in zip(shared(tiny_model, rows, [0, 0, 0], tokenizer, False), expected):
        assert torch.allclose(got, want, atol=1e-5)
