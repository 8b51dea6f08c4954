"""What every evaluation does with a causal LM: greedy generation batched with left padding, per-token
log-probabilities of texts batched with right padding, and work shared out across processes."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from simnpo.llm.data import pad_right
from simnpo.llm.distributed import synced_generation
from simnpo.losses import token_logprobs


@torch.no_grad()  # not inference_mode: a model evaluated mid-training trains on
def greedy_generate(
    model,
    tokenizer,
    prompts: Sequence[list[int]],
    max_new_tokens: int | Callable[[int], int],
    batch_size: int,
    stop_strings: Sequence[str] = (),
) -> list[str]:
    """Greedy continuations of tokenised prompts, batched longest first with left padding, stopped and cut at the
    model's end-of-sequence ids (``stop_ids``) and decoded as the benchmarks' code decodes them: without special
    tokens, tokenisation spaces cleaned up. ``max_new_tokens`` may be a function of the batch's padded prompt width
    (TOFU's original protocol caps prompt + answer). A sharded model generates with ``synced_gpus``: every process
    keeps stepping until all have finished, since each forward gathers parameters from all of them.

    ``stop_strings``: a row stops growing once its text holds one of them, and a batch once all its rows do. For a
    caller that cuts each text before its first stop string (MUSE's KnowMem) the result is the one of the full
    ``max_new_tokens``, since greedy tokens do not depend on later ones; the text after the stop string is not."""
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    device = next(model.parameters()).device
    stops = stop_ids(model, tokenizer)
    synced = synced_generation(model)
    out = [""] * len(prompts)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        width = max(len(prompts[i]) for i in idx)
        ids = torch.full((len(idx), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):
            ids[row, width - len(prompts[i]) :] = torch.tensor(prompts[i])
            mask[row, width - len(prompts[i]) :] = 1
        new = max_new_tokens(width) if callable(max_new_tokens) else max_new_tokens
        generated = model.generate(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            max_new_tokens=max(1, new),
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=stops,
            synced_gpus=synced,
            stopping_criteria=_stop_at_strings(tokenizer, width, stop_strings),
        )[:, width:].cpu()
        for row, i in enumerate(idx):
            tokens = generated[row].tolist()
            end = next((t for t, token in enumerate(tokens) if token in stops), len(tokens))
            out[i] = tokenizer.decode(tokens[:end], skip_special_tokens=True, clean_up_tokenization_spaces=True)
    return out


def _stop_at_strings(tokenizer, width: int, stop_strings: Sequence[str]):
    """A stopping criterion: which rows' new tokens, decoded as the outputs are, hold a stop string."""
    from transformers import StoppingCriteria, StoppingCriteriaList

    class StopAtStrings(StoppingCriteria):
        def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
            texts = tokenizer.batch_decode(
                input_ids[:, width:], skip_special_tokens=True, clean_up_tokenization_spaces=True
            )
            return torch.tensor([any(s in text for s in stop_strings) for text in texts], device=input_ids.device)

    return StoppingCriteriaList([StopAtStrings()] if stop_strings else [])


def stop_ids(model, tokenizer) -> list[int]:
    """The ids that end a generation: the model's generation config's (what ``generate`` stops at when the
    benchmarks' code calls it, e.g. Llama-3-Instruct's <|end_of_text|>, <|eom_id|> and <|eot_id|>), else the
    tokenizer's EOS."""
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if configured is None:
        return [tokenizer.eos_token_id]
    return [configured] if isinstance(configured, int) else list(configured)


@torch.no_grad()  # not inference_mode: a model evaluated mid-training trains on
def text_token_logprobs(
    model, tokenizer, texts: Sequence[str], batch_size: int, max_length: int | None = None
) -> list[list[float]]:
    """log p(token | prefix) of every token of each text after the first (the tokenizer's BOS included, as a model
    reads a document; MUSE's ``compute_ppl``), whole texts unless ``max_length`` cuts them, scored in right-padded
    batches longest first, without a KV cache (32 × 2048 tokens of a 7B model's cache would be tens of GB)."""
    cut = {"truncation": True, "max_length": max_length} if max_length is not None else {}
    encoded = tokenizer(list(texts), **cut)["input_ids"]
    data = pad_right([(ids, ids) for ids in encoded], tokenizer.pad_token_id)
    order = torch.argsort(data.attention_mask.sum(-1), descending=True)
    device = next(model.parameters()).device
    out: list[list[float]] = [[] for _ in texts]
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch = data[idx].trimmed().to(device)
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False).logits
        logp, mask = token_logprobs(logits, batch.labels)
        for row, i in enumerate(idx.tolist()):
            out[i] = logp[row][mask[row]].float().cpu().tolist()
    return out


def shard_map(fn: Callable[[list], list], items: list, accelerator=None) -> list:
    """``fn(items)`` with the items shared out across processes (accelerate's ``split_between_processes``, padded
    to equal counts so sharded models run the same number of forward passes) and every result gathered back to
    every process, in order. One process: just ``fn(items)``."""
    if accelerator is None or accelerator.num_processes == 1:
        return fn(items)
    from accelerate.utils import gather_object

    with accelerator.split_between_processes(items, apply_padding=True) as mine:
        gathered = gather_object(fn(list(mine)))
    # rank r holds a contiguous block of base (+1 for the first `extra` ranks) items, padded to `width`
    base, extra = divmod(len(items), accelerator.num_processes)
    width = base + (1 if extra else 0)
    counts = [base + (1 if r < extra else 0) for r in range(accelerator.num_processes)]
    return [value for r, n in enumerate(counts) for value in gathered[r * width : r * width + n]]
