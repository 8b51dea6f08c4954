"""What every evaluation does with a causal LM: greedy generation batched with left padding, per-token
log-probabilities of texts batched with right padding, and work shared out across processes."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence

import torch

from simnpo.llm.data import pad_right, padded
from simnpo.llm.distributed import synced_generation
from simnpo.llm.models import decode
from simnpo.losses import token_logprobs


@torch.no_grad()  # not inference_mode: a model evaluated mid-training trains on
def greedy_generate(
    model,
    tokenizer,
    prompts: Sequence[list[int]],
    max_new_tokens: int | Callable[[int], int],
    batch_size: int,
    stop_strings: Sequence[str] = (),
    mask_pad_tokens: bool = False,
) -> list[str]:
    """Greedy continuations of tokenised prompts, batched longest first with left padding, stopped and cut at the
    model's end-of-sequence ids (``stop_ids``) and decoded as the benchmarks' code decodes them: without special
    tokens, tokenisation spaces cleaned up. ``max_new_tokens`` may be a function of the batch's padded prompt width
    (TOFU's original protocol caps prompt + answer). A sharded model generates with ``synced_gpus``: every process
    keeps stepping until all have finished, since each forward gathers parameters from all of them.

    ``stop_strings``: a row stops growing once its text holds one of them, and a batch once all its rows do. For a
    caller that cuts each text before its first stop string (MUSE's KnowMem) the result is the one of the full
    ``max_new_tokens``, since greedy tokens do not depend on later ones; the text after the stop string is not.

    ``mask_pad_tokens``: the attention mask also hides prompt tokens equal to the pad token, as open-unlearning's
    collator builds it (``input_ids != pad_token_id``; with pad = EOS, a chat prompt's EOS tokens); ``generate`` then
    numbers positions by the attended tokens, as it does for open-unlearning."""
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    device = next(model.parameters()).device
    stops = stop_ids(model, tokenizer)
    synced = synced_generation(model)
    own_loop = not synced and plain_greedy(model)
    out = [""] * len(prompts)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        width = max(len(prompts[i]) for i in idx)
        ids, mask = padded(tokenizer, [prompts[i] for i in idx], "left", mask_pad_tokens)
        new = max(1, max_new_tokens(width) if callable(max_new_tokens) else max_new_tokens)
        if own_loop:
            stopped = _stopped_by_strings(tokenizer, stop_strings)
            generated = greedy_tokens(model, ids.to(device), mask.to(device), new, stops, stopped)
        else:
            generated = model.generate(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                max_new_tokens=new,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=stops,
                synced_gpus=synced,
                stopping_criteria=_stop_at_strings(tokenizer, width, stop_strings),
            )[:, width:].tolist()
        for row, i in enumerate(idx):
            tokens = generated[row]
            end = next((t for t, token in enumerate(tokens) if token in stops), len(tokens))
            out[i] = decode(tokenizer, tokens[:end])
    return out


# generation-config fields that change which token greedy decoding picks; with any of them away from its default,
# ``generate`` runs (it applies them), else our own loop (``greedy_tokens``)
_GREEDY_CHANGERS = (
    "repetition_penalty",
    "encoder_repetition_penalty",
    "no_repeat_ngram_size",
    "bad_words_ids",
    "sequence_bias",
    "suppress_tokens",
    "begin_suppress_tokens",
    "forced_bos_token_id",
    "forced_eos_token_id",
    "min_length",
    "min_new_tokens",
    "exponential_decay_length_penalty",
    "forced_decoder_ids",
)


def plain_greedy(model) -> bool:
    """Whether ``generate`` would pick each next token by the argmax of the logits alone: no logits processor from
    the model's generation config (e.g. Qwen2.5-Instruct's repetition penalty)."""
    from transformers import GenerationConfig

    config, default = getattr(model, "generation_config", None), GenerationConfig()
    return config is None or all(getattr(config, f, None) == getattr(default, f, None) for f in _GREEDY_CHANGERS)


@torch.no_grad()
def greedy_tokens(
    model, ids: torch.Tensor, mask: torch.Tensor, max_new: int, stops: list[int], stopped: Callable[[list[int]], bool]
) -> list[list[int]]:
    """The greedy new tokens of a left-padded batch ``ids`` [n, T] (``mask`` [n, T]), as ``generate`` picks them,
    with each row dropped from the batch (and its KV cache) once it emits a stop id or ``stopped(its tokens)``:
    a batch costs the tokens its rows generate, not its longest row's length times its size. Positions count the
    attended tokens, as ``generate`` numbers them."""
    accepted = forward_parameters(model)
    keep_last = {"logits_to_keep": 1} if "logits_to_keep" in accepted else {}
    cache_name = "cache" if "cache" in accepted else "past_key_values"  # transformers 5.25 renamed it
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    output = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, **keep_last)
    cache, last = getattr(output, cache_name), positions[:, -1]
    tokens: list[list[int]] = [[] for _ in range(ids.shape[0])]
    alive = torch.arange(ids.shape[0], device=ids.device)
    finished = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
    stop_tensor, droppable = torch.tensor(stops, device=ids.device), hasattr(cache, "batch_select_indices")
    for step in range(max_new):
        picked = output.logits[:, -1].argmax(-1)
        for row, token, ended in zip(alive.tolist(), picked.tolist(), finished.tolist()):
            if not ended:
                tokens[row].append(token)
        finished |= torch.isin(picked, stop_tensor)
        finished |= torch.tensor([stopped(tokens[row]) for row in alive.tolist()], device=ids.device)
        if step == max_new - 1 or bool(finished.all()):
            break
        if bool(finished.any()) and droppable:  # a cache that cannot drop rows keeps them, ignored
            kept = (~finished).nonzero()[:, 0]
            cache.batch_select_indices(kept)
            alive, mask, last, picked, finished = alive[kept], mask[kept], last[kept], picked[kept], finished[kept]
        mask, last = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=-1), last + 1
        output = model(
            input_ids=picked[:, None],
            attention_mask=mask,
            position_ids=last[:, None],
            use_cache=True,
            **{cache_name: cache},
        )
    return tokens


def forward_parameters(model) -> set[str]:
    """The keyword arguments the model's own forward takes (a PEFT wrapper's forward takes ``**kwargs`` and passes
    them to its base model's)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return set(inspect.signature(base.forward).parameters)


def _stopped_by_strings(tokenizer, stop_strings: Sequence[str]) -> Callable[[list[int]], bool]:
    """Whether a row's new tokens, decoded as the outputs are, hold a stop string."""
    if not stop_strings:
        return lambda tokens: False
    return lambda tokens: any(s in decode(tokenizer, tokens) for s in stop_strings)


def _stop_at_strings(tokenizer, width: int, stop_strings: Sequence[str]):
    """A stopping criterion: which rows' new tokens, decoded as the outputs are, hold a stop string."""
    from transformers import StoppingCriteria, StoppingCriteriaList

    class StopAtStrings(StoppingCriteria):
        def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
            stopped = _stopped_by_strings(tokenizer, stop_strings)
            return torch.tensor([stopped(row) for row in input_ids[:, width:].tolist()], device=input_ids.device)

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
def text_batches(model, tokenizer, texts: Sequence[str], batch_size: int, max_length: int | None = None):
    """Each text whole (the tokenizer's BOS included, as a model reads a document; MUSE's ``compute_ppl``) unless
    ``max_length`` cuts it, scored in right-padded batches longest first, without a KV cache (32 × 2048 tokens of a 7B
    model's cache would be tens of GB): yields (the batch's text indices, the batch on the model's device, its
    logits)."""
    cut = {"truncation": True, "max_length": max_length} if max_length is not None else {}
    data = pad_right(tokenizer, [(ids, ids) for ids in tokenizer(list(texts), **cut)["input_ids"]])
    order = torch.argsort(data.lengths, descending=True)
    device = next(model.parameters()).device
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch = data[idx].trimmed().to(device)
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False).logits
        yield idx.tolist(), batch, logits


def text_token_logprobs(
    model, tokenizer, texts: Sequence[str], batch_size: int, max_length: int | None = None
) -> list[list[float]]:
    """log p(token | prefix) of every token of each text after the first (``text_batches``)."""
    out: list[list[float]] = [[] for _ in texts]
    for idx, batch, logits in text_batches(model, tokenizer, texts, batch_size, max_length):
        logp, mask = token_logprobs(logits, batch.labels)
        for row, i in enumerate(idx):
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
