"""Scoring several answers to one prompt with one pass over the prompt.

A TOFU item's seven answers (the answer, its paraphrase, five perturbed ones) are seven sequences that begin with
the same prompt. Scored one sequence per row, the prompt (system turn, question: half the tokens of a chat model's
row) is computed seven times. Here each group of rows first runs its shared prefix once, keeping its keys and values
(a ``DynamicCache``), then every row runs only its own tokens against its group's cached prefix. The logits of
every labelled token are those of the row scored whole, up to float rounding: the same tokens, positions and
attention mask.

The shared prefix of a group is the longest common prefix of its rows' tokens, never past the first labelled token
(with a tag template whose prompt ends in a space, the answer's first word can absorb the prompt's last token, so
rows may part before their labels start).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from simnpo.llm.data import pad_right, padded
from simnpo.llm.generation import forward_parameters
from simnpo.losses import IGNORE_INDEX

Row = tuple[list[int], list[int]]  # (input_ids, labels), labels -100 where nothing is scored


def prefix_length(rows: Sequence[Row]) -> int:
    """The tokens every row of a group shares before any of them is labelled."""
    first_label = min(
        next((t for t, label in enumerate(labels) if label != IGNORE_INDEX), len(ids)) for ids, labels in rows
    )
    length = 0
    while length < first_label and all(len(ids) > length and ids[length] == rows[0][0][length] for ids, _ in rows):
        length += 1
    return length


def group_batches(groups: list[list[int]], lengths: list[int], batch_size: int) -> list[list[int]]:
    """Groups (lists of row indices) packed into batches of at most ``batch_size`` rows (a larger group alone),
    longest rows first to keep padding low."""
    order = sorted(range(len(groups)), key=lambda g: -max(lengths[r] for r in groups[g]))
    batches, current, rows = [], [], 0
    for g in order:
        if current and rows + len(groups[g]) > batch_size:
            batches.append(current)
            current, rows = [], 0
        current.append(g)
        rows += len(groups[g])
    return batches + ([current] if current else [])


@torch.no_grad()
def shared_prefix_logits(
    model, rows: Sequence[Row], owner: Sequence[int], batch_size: int, tokenizer, mask_pad_tokens: bool = False
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """For batches of rows grouped by ``owner`` (rows with the same owner share a prompt): (the rows' indices [n],
    logits [n, T, V], labels [n, T]) aligned as a causal LM's are (position t predicts label t + 1), covering each
    row from the last token of its group's prefix on, so every labelled token is predicted. ``mask_pad_tokens``
    hides pad-valued tokens from attention, as open-unlearning's collator does (``data.padded``)."""
    device = next(model.parameters()).device
    groups: dict[int, list[int]] = {}
    for r, o in enumerate(owner):
        groups.setdefault(o, []).append(r)
    members = list(groups.values())
    accepted = forward_parameters(model)
    cache_name = "cache" if "cache" in accepted else "past_key_values"  # transformers 5.25 renamed it
    keep_last = {"logits_to_keep": 1} if "logits_to_keep" in accepted else {}
    for batch in group_batches(members, [len(ids) for ids, _ in rows], batch_size):
        prefixes = [prefix_length([rows[r] for r in members[g]]) for g in batch]
        assert min(prefixes) >= 1, "every sequence starts with a token its group shares (BOS or the chat's start)"
        prefix_ids, prefix_mask = padded(
            tokenizer, [rows[members[g][0]][0][:n] for g, n in zip(batch, prefixes)], "left", mask_pad_tokens
        )
        positions = left_positions(prefixes, prefix_ids.shape[1])
        prefix = model(
            input_ids=prefix_ids.to(device),
            attention_mask=prefix_mask.to(device),
            position_ids=positions.to(device),
            use_cache=True,
            **keep_last,
        )
        cache, last_logits = getattr(prefix, cache_name, None), prefix.logits[:, -1]
        row_ids = [r for g in batch for r in members[g]]
        if not hasattr(cache, "batch_select_indices"):  # no cache whose rows can be repeated: score rows whole
            whole = pad_right(tokenizer, [rows[r] for r in row_ids], mask_pad_tokens).to(device)
            logits = model(input_ids=whole.input_ids, attention_mask=whole.attention_mask, use_cache=False).logits
            yield torch.tensor(row_ids), logits, whole.labels
            continue
        row_group = torch.tensor([k for k, g in enumerate(batch) for _ in members[g]], device=device)
        row_prefix = [prefixes[k] for k, g in enumerate(batch) for _ in members[g]]
        tail = pad_right(
            tokenizer, [(rows[r][0][n:], rows[r][1][n:]) for r, n in zip(row_ids, row_prefix)], mask_pad_tokens
        )
        cache.batch_select_indices(row_group)
        tail_positions = torch.tensor(row_prefix)[:, None] + torch.arange(tail.input_ids.shape[1])[None, :]
        tail_logits = model(
            input_ids=tail.input_ids.to(device),
            attention_mask=torch.cat([prefix_mask.to(device)[row_group], tail.attention_mask.to(device)], dim=-1),
            position_ids=tail_positions.to(device),
            use_cache=True,
            **{cache_name: cache},
        ).logits
        logits = torch.cat([last_logits[row_group][:, None], tail_logits], dim=1)
        labels = torch.cat([torch.full_like(tail.labels[:, :1], IGNORE_INDEX), tail.labels], dim=1)
        yield torch.tensor(row_ids), logits, labels.to(device)


def left_positions(lengths: list[int], width: int) -> torch.Tensor:
    """Position ids [n, width] of left-padded rows of ``lengths`` tokens: each row's own 0, 1, … (as a right-padded row
    numbers them), 0 on the padding."""
    column = torch.arange(width)[None, :]
    return (column - (width - torch.tensor(lengths))[:, None]).clamp(min=0)
