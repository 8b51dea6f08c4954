"""The MUSE evaluation, batched, with the benchmark's metric names (``verbmem_f``, ``knowmem_f``, ``knowmem_r``,
``privleak``) as ``{agg_value, value_by_index}`` entries. Definitions in ``metrics`` (docs/conventions.md):

- VerbMem on D_f: greedy continuation of ``verbmem_tokens`` (128) new tokens of each verbmem prompt, ROUGE-L F1
  against the reference cut to its first 128 tokens as MUSE cuts it (BOS counted), mean × 100.
- KnowMem on D_f and D_r (utility): the 10-shot prompt, ``knowmem_tokens`` (32) greedy tokens cut at the stop
  strings, ROUGE-L F1 against the answer, mean × 100.
- PrivLeak: Min-40 % scores of the whole privleak forget and holdout texts, their AUC, relative to the retrain AUC.
- On request (``mia``), open-unlearning's membership-inference attacks (``llm/mia.py``) on the same texts, scored as
  MUSE scores them (whole texts, every token after the first), as ``mia_ATTACK`` {forget, holdout, auc, agg_value}.
Prompts are tokenised as MUSE does, with the tokenizer's special tokens (Llama's BOS).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from simnpo.llm import mia
from simnpo.llm.data import pad_right
from simnpo.llm.generation import greedy_generate, shard_map, text_batches, text_token_logprobs
from simnpo.llm.models import reference_losses
from simnpo.llm.muse import metrics as M
from simnpo.llm.muse.data import load_muse
from simnpo.losses import token_logprobs

CORPORA = ("news", "books")


@dataclass(frozen=True)
class MuseEvalConfig:
    """The corpus, generation lengths, Min-K's K and the batch (PrivLeak scores whole texts, uncut, as MUSE's code
    does). ``retrain_auc``: the retrain model's PrivLeak AUC (None: measured on the built-in retrain model, else the
    benchmark's published one for the corpus)."""

    corpus: str = "news"
    verbmem_tokens: int = 128
    knowmem_tokens: int = 32
    min_k: float = 0.4
    batch_size: int = 32
    retrain_auc: float | None = None
    mia: tuple[str, ...] = ()  # attacks on the PrivLeak texts besides PrivLeak's own Min-K % (mia.RESULT_KEYS)
    mia_reference: str | None = None  # the Reference attack's model (a folder or hub id; the same tokenizer)

    def __post_init__(self) -> None:
        attacks = self.mia.split(",") if isinstance(self.mia, str) else self.mia  # command line (text) or config.json
        object.__setattr__(self, "mia", tuple(a.strip() for a in attacks if a.strip()))
        mia.check_attacks(self.mia)
        if "reference" in self.mia and self.mia_reference is None:
            raise ValueError("the reference attack needs a reference model: give --mia-reference MODEL")
        if self.corpus not in CORPORA:
            raise ValueError(f"unknown MUSE corpus {self.corpus!r}; use news or books")
        if self.retrain_auc is not None and not 0 < self.retrain_auc <= 1:
            raise ValueError(f"--retrain-auc must be in (0, 1], got {self.retrain_auc}")
        if min(self.verbmem_tokens, self.knowmem_tokens, self.batch_size) < 1:
            raise ValueError("MUSE generation lengths and batch size must be >= 1")
        if not 0 < self.min_k <= 1:
            raise ValueError(f"min_k must be in (0, 1], got {self.min_k}")


def _generate(
    model, tokenizer, prompts: list[str], new_tokens: int, config: MuseEvalConfig, accelerator, stop_strings=()
):
    ids = tokenizer(prompts)["input_ids"]
    fn = functools.partial(
        greedy_generate,
        model,
        tokenizer,
        max_new_tokens=new_tokens,
        batch_size=config.batch_size,
        stop_strings=stop_strings,
    )
    return shard_map(fn, ids, accelerator)


def _entry(values: list[float], rows: list[dict]) -> dict:
    return {
        "agg_value": float(np.mean(values)) * 100,
        "value_by_index": {str(i): {**row, "rougeL_f1": v} for i, (v, row) in enumerate(zip(values, rows))},
    }


def verbmem(model, tokenizer, rows: list[dict], config: MuseEvalConfig, accelerator=None) -> dict:
    """VerbMem: continuations of the prompts against the 128-token references."""
    generations = _generate(model, tokenizer, [r["prompt"] for r in rows], config.verbmem_tokens, config, accelerator)
    references = [M.truncate_tokens(tokenizer, r["gt"], config.verbmem_tokens) for r in rows]
    scores = M.rouge_l_f1(references, generations)
    return _entry(scores, [{"gt": ref, "generation": g} for ref, g in zip(references, generations)])


def knowmem(model, tokenizer, rows: list[dict], icl: list[dict], config: MuseEvalConfig, accelerator=None) -> dict:
    """KnowMem: few-shot answers cut at the stop strings against the answers."""
    shots = [(r["question"], r["answer"]) for r in icl]
    prompts = [M.knowmem_prompt(shots, r["question"]) for r in rows]
    # generation stops once every answer has reached a stop string: the cut answers are those of all 32 tokens
    raw = _generate(model, tokenizer, prompts, config.knowmem_tokens, config, accelerator, M.STOP_STRINGS)
    answers = [M.cut_at_stop(g) for g in raw]
    scores = M.rouge_l_f1([r["answer"] for r in rows], answers)
    return _entry(
        scores, [{"question": r["question"], "answer": r["answer"], "generation": a} for r, a in zip(rows, answers)]
    )


def min_k_scores(model, tokenizer, texts: list[str], config: MuseEvalConfig, accelerator=None) -> list[float]:
    """The Min-K % score of every text (higher = less member-like)."""
    fn = functools.partial(text_token_logprobs, model, tokenizer, batch_size=config.batch_size)
    return [M.min_k_score(logps, config.min_k) for logps in shard_map(fn, texts, accelerator)]


@torch.no_grad()
def _mean_nlls(model, tokenizer, texts: list[str], batch_size: int) -> list[float]:
    """Each text's mean NLL over every token after the first (the Reference attack's reference model)."""
    losses = [0.0] * len(texts)
    for idx, batch, logits in text_batches(model, tokenizer, texts, batch_size):
        for i, loss in zip(idx, mia.mean_nll(*token_logprobs(logits, batch.labels)).double().cpu().tolist()):
            losses[i] = loss
    return losses


def _batch_scores(logits, batch, texts: list[str], config: MuseEvalConfig) -> dict[str, list[float]]:
    """One batch's scores: PrivLeak's Min-K % (as ``min_k_scores``) and each in-batch attack of ``config.mia``."""
    logp, mask = token_logprobs(logits, batch.labels)
    loss = mia.mean_nll(logp, mask).double().cpu()
    found = {
        "privleak": [M.min_k_score(logp[r][mask[r]].float().cpu().tolist(), config.min_k) for r in range(len(loss))]
    }
    found["loss"] = loss.tolist()  # the Reference attack's too
    if "zlib" in config.mia:
        found["zlib"] = mia.zlib_scores(loss, texts).tolist()
    if "min_k" in config.mia:
        found["min_k"] = mia.min_k_scores(logp, mask, config.min_k).tolist()
    if "min_k++" in config.mia:
        found["min_k++"] = mia.min_k_plus_plus_scores(
            logp, *mia.next_token_moments(logits), mask, config.min_k
        ).tolist()
    return found


@torch.no_grad()  # GradNorm turns gradients on for its own passes
def text_scores(model, tokenizer, texts: list[str], config: MuseEvalConfig) -> list[dict[str, float]]:
    """Each text's PrivLeak Min-K % score and its score under each attack of ``config.mia`` (higher = less
    member-like), from one pass over the texts in PrivLeak's batches: LOSS its mean NLL, ZLib that over its zlib size,
    Min-K % and Min-K %++ at PrivLeak's k, Reference its mean NLL minus the reference model's (computed once per
    process for these texts: ``reference_losses``), GradNorm one text at a time; over every token after the first,
    as ``text_token_logprobs``."""
    out: list[dict[str, float]] = [{} for _ in texts]
    for idx, batch, logits in text_batches(model, tokenizer, texts, config.batch_size):
        for name, values in _batch_scores(logits, batch, [texts[i] for i in idx], config).items():
            for i, value in zip(idx, values):
                out[i][name] = float(value)
    if "reference" in config.mia:
        compute = functools.partial(_mean_nlls, tokenizer=tokenizer, texts=texts, batch_size=config.batch_size)
        theirs = reference_losses(config.mia_reference, model, tokenizer, [config.batch_size, texts], compute)
        ours = torch.tensor([scores["loss"] for scores in out], dtype=torch.float64)
        for scores, value in zip(out, mia.reference_scores(ours, torch.tensor(theirs)).tolist()):
            scores["reference"] = value
    if "gradnorm" in config.mia:
        one_by_one = (pad_right(tokenizer, [(ids, ids)]) for ids in tokenizer(list(texts))["input_ids"])
        for scores, value in zip(out, mia.gradnorm_scores(model, one_by_one, last_token=True)):
            scores["gradnorm"] = value
    return out


def attack_entries(forget: list[dict], holdout: list[dict], attacks: tuple[str, ...]) -> dict:
    """``mia_ATTACK`` results of ``attacks`` from the PrivLeak forget and holdout texts' ``text_scores``."""
    per_attack = lambda items: {a: [item[a] for item in items] for a in attacks}  # noqa: E731
    return mia.attack_results(per_attack(forget), per_attack(holdout))


def privleak_entry(forget: list[float], holdout: list[float], retrain_auc: float | None) -> dict:
    """PrivLeak with its AUC and scores; ``agg_value`` is None without a retrain AUC to compare with."""
    auc = M.privleak_auc(forget, holdout)
    return {
        "agg_value": None if retrain_auc is None else M.privleak(auc, retrain_auc),
        "auc": auc,
        "retrain_auc": retrain_auc,
        "forget_scores": forget,
        "holdout_scores": holdout,
    }


def evaluate_muse(
    model,
    tokenizer,
    data: str,
    config: MuseEvalConfig,
    retrain_auc: float | None,
    advance: Callable[[int], None] | None = None,
    accelerator=None,
) -> dict:
    """Every MUSE metric of ``model`` on the files at ``data``; PrivLeak against ``retrain_auc`` (None: the AUC is
    reported, PrivLeak is not). With several processes the items are shared out; every process gets the result."""
    results: dict = {}
    if advance:
        advance(1)
    results["verbmem_f"] = verbmem(model, tokenizer, load_muse(data, "verbmem", "forget"), config, accelerator)
    for key, split in (("knowmem_f", "forget"), ("knowmem_r", "retain")):
        if advance:
            advance(1)
        rows, icl = load_muse(data, "knowmem", f"{split}_qa"), load_muse(data, "knowmem", f"{split}_qa_icl")
        results[key] = knowmem(model, tokenizer, rows, icl, config, accelerator)
    if advance:
        advance(1)
    texts = {split: [r["text"] for r in load_muse(data, "privleak", split)] for split in ("forget", "holdout")}
    if config.mia:  # the attacks score the texts in PrivLeak's own pass
        score = functools.partial(text_scores, model, tokenizer, config=config)
        forget, holdout = (shard_map(score, texts[split], accelerator) for split in texts)
        results["privleak"] = privleak_entry(
            [s["privleak"] for s in forget], [s["privleak"] for s in holdout], retrain_auc
        )
        results.update(attack_entries(forget, holdout, config.mia))
    else:
        forget, holdout = (min_k_scores(model, tokenizer, texts[split], config, accelerator) for split in texts)
        results["privleak"] = privleak_entry(forget, holdout, retrain_auc)
    results["_meta"] = {"corpus": config.corpus}
    return results


def muse_summary(results: dict) -> dict:
    """The four headline numbers (and the PrivLeak AUC) of a MUSE_EVAL dict."""
    return {
        **{key: results[key]["agg_value"] for key in ("verbmem_f", "knowmem_f", "privleak", "knowmem_r")},
        "privleak_auc": results["privleak"]["auc"],
        **{key: results[key]["agg_value"] for key in mia.RESULT_KEYS.values() if key in results},
        **results["_meta"],
    }
