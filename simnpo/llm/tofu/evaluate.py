"""The TOFU evaluation, batched: every answer of every item scored in padded forward passes, greedy generation
with left padding, results in open-unlearning's ``TOFU_EVAL.json`` layout ({metric: {agg_value, value_by_index}}).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch

from simnpo.llm import mia
from simnpo.llm.generation import greedy_generate, shard_map
from simnpo.llm.mia import MIN_K
from simnpo.llm.models import decode, reference_losses
from simnpo.llm.scoring import shared_prefix_logits
from simnpo.llm.templates import Template, detect_template, encode_pair, prompt_ids, template_named
from simnpo.llm.tofu import metrics as M
from simnpo.llm.tofu.data import FORGET_SPLITS, encode_prompts, encode_qa, load_tofu
from simnpo.llm.tofu.metrics import forget_ratios
from simnpo.llm.tofu.privacy import holdout_split, privleak_entry
from simnpo.losses import IGNORE_INDEX, token_logprobs

# what each protocol is (docs/conventions.md): open-unlearning's attention mask hides every token equal to the pad
# token (its collator's ``input_ids != pad_token_id``), which matters where the pad is a token of the prompts (the EOS
# of ChatML and Llama-3 chat models); TOFU's original code attends to every token of a row
PROTOCOLS = {
    "open-unlearning": "open-unlearning's evaluation: all items, 200 new tokens, pad-valued tokens hidden from "
    "attention",
    "attend-all": "open-unlearning's items and lengths, every token attended (departs from it where the pad token "
    "occurs in prompts)",
    "original": "TOFU's original code: the first 300 items, 200 tokens in total, every token attended",
}
ORIGINAL_MAX_ITEMS, ORIGINAL_MAX_LENGTH = 300, 200
# evaluation set -> (TOFU configuration, key prefix, base answer of the truth ratio)
SETS = {
    "forget": (None, "forget", "paraphrased_answer"),
    "retain": ("retain_perturbed", "retain", "paraphrased_answer"),
    "ra": ("real_authors_perturbed", "ra", "answer"),
    "wf": ("world_facts_perturbed", "wf", "answer"),
}


@dataclass(frozen=True)
class TofuEvalConfig:
    """``protocol="open-unlearning"`` (default): all items, up to ``max_new_tokens`` new tokens, the attention mask
    hiding pad-valued tokens as open-unlearning's collator does; ``"attend-all"``: the same with every token attended;
    ``"original"``: the original TOFU code's first 300 items of each set and 200 tokens in total, prompt included,
    every token attended (``PROTOCOLS``). ``template``: the
    prompt template's name (``templates.TEMPLATES``; None until detected from the model). ``retain_results``: the
    retain model's TOFU_EVAL.json, ours or open-unlearning's, the forget-quality reference."""

    split: str = "forget10"
    template: str | None = None
    retain_results: str | None = None
    protocol: str = "open-unlearning"
    max_new_tokens: int = 200
    batch_size: int = 64  # sequences per scoring pass
    # prompts per generation batch: rows leave the batch as they finish, so a large batch costs little more than its
    # generated tokens, and the fewer batches, the fewer steps (each a pass over the weights)
    generation_batch_size: int = 128
    max_length: int = 512
    # membership-inference attacks beyond Min-K% (which privleak needs and is always run): mia.RESULT_KEYS
    mia: tuple[str, ...] = ()
    mia_k: float = MIN_K  # Min-K% and Min-K%++'s k (open-unlearning's 0.4)
    mia_reference: str | None = None  # the Reference attack's model (a folder or hub id; the same tokenizer)

    def __post_init__(self) -> None:
        if self.split not in FORGET_SPLITS:
            raise ValueError(f"unknown TOFU split {self.split!r}; use one of {', '.join(FORGET_SPLITS)}")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {self.protocol!r}; use one of {', '.join(PROTOCOLS)}")
        if min(self.max_new_tokens, self.batch_size, self.generation_batch_size, self.max_length) < 1:
            raise ValueError("max_new_tokens, batch sizes and max_length must be >= 1")
        if self.template is not None:
            template_named(self.template)
        attacks = self.mia.split(",") if isinstance(self.mia, str) else self.mia  # command line (text) or config.json
        object.__setattr__(self, "mia", tuple(a.strip() for a in attacks if a.strip()))
        mia.check_attacks(self.mia)
        if "reference" in self.mia and self.mia_reference is None:
            raise ValueError("the reference attack needs a reference model: give --mia-reference MODEL")
        if not 0 < self.mia_k <= 1:
            raise ValueError(f"mia_k must be in (0, 1], got {self.mia_k}")

    @property
    def attacks(self) -> tuple[str, ...]:
        """Min-K% (for privleak), then the attacks asked for (Reference whenever its model is given)."""
        return tuple(dict.fromkeys(("min_k", *self.mia, *(("reference",) if self.mia_reference else ()))))

    @property
    def open_unlearning(self) -> bool:
        """Whether open-unlearning's attention mask (pad-valued tokens hidden) and loss computation apply."""
        return self.protocol == "open-unlearning"

    def prompt_template(self) -> Template:
        assert self.template is not None, "the template is resolved before anything is evaluated"
        return template_named(self.template)


@torch.no_grad()  # not inference_mode: a model evaluated mid-training trains on
def score_answers(
    model,
    tokenizer,
    template: Template,
    questions: list[str],
    answers: list[list[str]],
    batch_size: int,
    max_length: int = 512,
    open_unlearning: bool = False,
    attacks: tuple[str, ...] = (),
    k: float = mia.MIN_K,
) -> dict[str, list[list[float]]]:
    """avg_loss, token count |y|, exact memorisation and extraction strength of every answer of every item.

    answers[i] lists item i's answers (e.g. answer, paraphrase and the perturbed ones); each is encoded as the
    benchmark encodes it (``templates.encode_pair``) and an item's answers are scored together against one pass over
    their shared prompt (``scoring.shared_prefix_logits``), about ``batch_size`` sequences at a time. EM and ES leave
    out the last answer position (its EOS), as open-unlearning's ``tokenwise_vocab_logprobs`` does.
    ``open_unlearning``: open-unlearning's attention mask (``data.pad_right``) and its float32 loss computation
    (``metrics.open_unlearning_answer_loss``); otherwise every token attended and the exact mean NLL. ``attacks``:
    also the score of each item's first answer under these membership-inference attacks (``llm/mia.py``; LOSS is
    avg_loss, GradNorm is ``mia.gradnorm_scores``'), over the tokens EM and ES score; NaN for the other answers.
    """
    owner = [i for i, group in enumerate(answers) for _ in group]
    rows = [
        encode_pair(tokenizer, template, questions[i], a, max_length) for i, group in enumerate(answers) for a in group
    ]
    in_batch = [a for a in attacks if a in ("min_k", "min_k++", "zlib")]
    scores = {name: torch.empty(len(rows)) for name in ("avg_loss", "tokens", "em", "es")}
    scores |= {name: torch.full((len(rows),), float("nan"), dtype=torch.float64) for name in in_batch}
    first = torch.tensor([j == 0 or owner[j] != owner[j - 1] for j in range(len(owner))])  # each item's answer
    batches = shared_prefix_logits(model, rows, owner, batch_size, tokenizer, open_unlearning)
    for idx, logits, labels in batches:
        logp, mask = token_logprobs(logits, labels)
        if open_unlearning:
            scores["avg_loss"][idx] = M.open_unlearning_answer_loss(logits, labels).cpu()
        else:
            scores["avg_loss"][idx] = (-logp.sum(-1) / mask.sum(-1).clamp(min=1)).float().cpu()
        predictions = logits[:, :-1].argmax(-1)
        without_eos = mia.without_last(mask)
        scores["tokens"][idx] = mask.sum(-1).float().cpu()
        scores["em"][idx] = M.exact_memorisation(predictions, labels[:, 1:], without_eos).float().cpu()
        scores["es"][idx] = M.extraction_strength(predictions, labels[:, 1:], without_eos).float().cpu()
        sel = first[idx].to(logits.device)  # the attacks score only each item's answer
        if "min_k" in in_batch:
            scores["min_k"][idx[sel.cpu()]] = mia.min_k_scores(logp[sel], without_eos[sel], k)
        if "min_k++" in in_batch:
            moments = mia.next_token_moments(logits[sel])
            scores["min_k++"][idx[sel.cpu()]] = mia.min_k_plus_plus_scores(logp[sel], *moments, without_eos[sel], k)
    if "zlib" in in_batch:  # the answer's text as open-unlearning decodes its labels
        answer_rows = first.nonzero()[:, 0]
        texts = [decode(tokenizer, [t for t in rows[j][1] if t != IGNORE_INDEX]) for j in answer_rows.tolist()]
        scores["zlib"][answer_rows] = mia.zlib_scores(scores["avg_loss"][answer_rows], texts)
    if "loss" in attacks:
        scores["loss"] = scores["avg_loss"]
    out = {name: [[] for _ in answers] for name in scores}
    for j, i in enumerate(owner):
        for name, values in scores.items():
            out[name][i].append(values[j].item())
    return out


def generate_answers(model, tokenizer, questions: list[str], config: TofuEvalConfig) -> list[str]:
    """Greedy answers to the templated questions (``greedy_generate``), stripped."""
    if config.protocol == "open-unlearning":
        new = config.max_new_tokens
    else:  # the original code caps prompt + answer at 200 tokens
        new = lambda width: ORIGINAL_MAX_LENGTH - width  # noqa: E731
    prompts = encode_prompts(tokenizer, config.prompt_template(), questions, config.max_length)
    generations = greedy_generate(
        model, tokenizer, prompts, new, config.generation_batch_size, mask_pad_tokens=config.open_unlearning
    )
    return [a.strip() for a in generations]


def decoded_answer(tokenizer, template: Template, question: str, answer: str, max_length: int = 512) -> str:
    """The ROUGE reference as open-unlearning's ``eval_text_similarity`` makes it: the decoded conversation with
    the decoded prompt taken out (without special tokens, tokenisation spaces cleaned up), stripped."""
    full, _ = encode_pair(tokenizer, template, question, answer, max_length)
    prompt = prompt_ids(tokenizer, template, question, max_length)
    return decode(tokenizer, full).replace(decode(tokenizer, prompt), "").strip()


def _by_index(values: list) -> dict[str, dict]:
    return {str(i): v for i, v in enumerate(values)}


def _prob_entry(losses: list[float]) -> dict:
    probs = M.normalised_probability(np.asarray(losses)).tolist()
    return {"prob": probs[0] if len(losses) == 1 else probs, "avg_loss": losses[0] if len(losses) == 1 else losses}


def _scored_with_attacks(model, tokenizer, rows, answers, config: TofuEvalConfig, attacks: tuple[str, ...]):
    """``score_answers`` of the items' answers, and per item its first answer's score under each attack (Reference:
    its avg_loss minus the reference model's, computed once per process for these items: ``reference_losses``)."""
    in_batch = tuple(a for a in attacks if a not in ("gradnorm", "reference"))
    questions, template = [r["question"] for r in rows], config.prompt_template()
    score = functools.partial(
        score_answers, tokenizer=tokenizer, template=template, questions=questions, batch_size=config.batch_size,
        max_length=config.max_length, open_unlearning=config.open_unlearning, k=config.mia_k,
    )  # fmt: skip
    scores = score(model, answers=answers, attacks=in_batch)
    other = {}
    if "gradnorm" in attacks:  # one item at a time, encoded as the benchmark encodes it
        encode = functools.partial(encode_qa, tokenizer, template, max_length=config.max_length)
        items = (encode([r["question"]], [r["answer"]], mask_pad_tokens=config.open_unlearning) for r in rows)
        other["gradnorm"] = mia.gradnorm_scores(model, items)
    if "reference" in attacks:
        first = [group[:1] for group in answers]
        encoding = [config.template, config.max_length, config.open_unlearning, config.batch_size, questions, first]
        their_losses = lambda ref: [x[0] for x in score(ref, answers=first)["avg_loss"]]  # noqa: E731
        theirs = reference_losses(config.mia_reference, model, tokenizer, encoding, their_losses)
        ours = [losses[0] for losses in scores["avg_loss"]]
        other["reference"] = mia.reference_scores(torch.tensor(ours), torch.tensor(theirs)).tolist()
    attacked = [
        {a: scores[a][i][0] for a in in_batch} | {a: values[i] for a, values in other.items()} for i in range(len(rows))
    ]
    return scores, attacked


def item_scores(
    model,
    tokenizer,
    rows: list[dict],
    base: str,
    config: TofuEvalConfig,
    attacks: tuple[str, ...] = (),
) -> list[dict]:
    """What the model's likelihoods say about each item: every answer's avg_loss (answer, then the base of the truth
    ratio unless it is the answer, then the perturbed ones), the answer's EM and ES, the ROUGE reference, and its
    scores under ``attacks`` (``mia``)."""
    answers = [[r["answer"], *([r[base]] if base != "answer" else []), *r["perturbed_answer"]] for r in rows]
    scores, attacked = _scored_with_attacks(model, tokenizer, rows, answers, config, attacks)
    template = config.prompt_template()
    references = [decoded_answer(tokenizer, template, r["question"], r["answer"], config.max_length) for r in rows]
    return [
        {"losses": loss, "tokens": int(n[0]), "em": em[0], "es": es[0], "reference": ref, "mia": m}
        for loss, n, em, es, ref, m in zip(
            scores["avg_loss"], scores["tokens"], scores["em"], scores["es"], references, attacked
        )
    ]


def attack_scores(model, tokenizer, rows: list[dict], config: TofuEvalConfig) -> list[dict[str, float]]:
    """Each item's answer (a holdout item's) scored by every attack of ``config.attacks``."""
    answers = [[r["answer"]] for r in rows]
    return _scored_with_attacks(model, tokenizer, rows, answers, config, config.attacks)[1]


def set_metrics(rows: list[dict], items: list[dict], key: str, base: str, forget_set: bool) -> dict:
    """Every metric of one evaluation set from its per-item scores, keyed as open-unlearning keys them."""
    loss = [item["losses"] for item in items]
    answer_loss = np.array([x[0] for x in loss])
    base_loss = np.array([x[1] if base != "answer" else x[0] for x in loss])
    pert_loss = np.array([x[-len(r["perturbed_answer"]) :] for x, r in zip(loss, rows)])
    ratios = M.truth_ratios(base_loss, pert_loss)
    tokens = [item["tokens"] for item in items]  # |y| of each answer, beyond open-unlearning's fields
    out = {
        f"{key}_Q_A_Prob": {
            "agg_value": float(np.mean(M.normalised_probability(answer_loss))),
            "value_by_index": _by_index(
                [{**_prob_entry([x]), "tokens": n} for x, n in zip(answer_loss.tolist(), tokens)]
            ),
        },
        f"{key}_Q_A_PERT_Prob": {
            "agg_value": float(np.mean(M.normalised_probability(pert_loss))),
            "value_by_index": _by_index([_prob_entry(x) for x in pert_loss.tolist()]),
        },
    }
    if base != "answer":
        out[f"{key}_Q_A_PARA_Prob"] = {
            "agg_value": float(np.mean(M.normalised_probability(base_loss))),
            "value_by_index": _by_index([_prob_entry([x]) for x in base_loss.tolist()]),
        }
    else:
        probs = M.option_normalised_probability(answer_loss, pert_loss)
        out[f"{key}_Q_A_Prob_normalised"] = {
            "agg_value": float(probs.mean()),
            "value_by_index": _by_index([{"prob": p} for p in probs.tolist()]),
        }
    ratio_key = "forget_truth_ratio" if forget_set else f"{key}_Truth_Ratio"
    aggregate = M.forget_truth_ratio_score if forget_set else M.retain_truth_ratio_score
    out[ratio_key] = {"agg_value": aggregate(ratios), "value_by_index": _by_index([{"score": r} for r in ratios])}
    generations = [item["generation"] for item in items]
    references = [item["reference"] for item in items]
    rouge = M.rouge_recall(references, generations)
    entries = [
        {**s, "input": r["question"], "ground_truth": ref, "generation": g}
        for s, r, ref, g in zip(rouge, rows, references, generations)
    ]
    out[f"{key}_Q_A_ROUGE"] = {
        "agg_value": float(np.mean([s["rougeL_recall"] for s in rouge])),
        "value_by_index": _by_index(entries),
    }
    if forget_set:
        for name, metric in (("em", "exact_memorization"), ("es", "extraction_strength")):
            values = [item[name] for item in items]
            out[metric] = {
                "agg_value": float(np.mean(values)),
                "value_by_index": _by_index([{"score": v} for v in values]),
            }
    return out


def evaluate_tofu(
    model,
    tokenizer,
    data: str,
    config: TofuEvalConfig,
    retain_ratios: list[float] | None = None,
    advance: Callable[[int], None] | None = None,
    accelerator=None,
    retain_auc: float | None = None,
) -> dict:
    """Every TOFU metric of ``model`` on ``config.split``, with forget quality against ``retain_ratios`` (the retain
    model's per-item forget truth ratios) or reported as unavailable. With an ``accelerate.Accelerator`` of several
    processes, the items are shared out and the results gathered; every process returns the same dict. A config
    without a template uses the one detected from the tokenizer and model (``templates.detect_template``)."""
    if config.template is None:
        config = replace(config, template=detect_template(tokenizer, model.config.model_type)[0])
    advance = advance or (lambda parts: None)
    sets, scored = {}, {}
    for name, (tofu_config, _, base) in SETS.items():
        rows = load_tofu(data, tofu_config or f"{config.split}_perturbed")
        sets[name] = rows[:ORIGINAL_MAX_ITEMS] if config.protocol == "original" else rows
        attacks = config.attacks if name == "forget" else ()
        score = functools.partial(item_scores, model, tokenizer, base=base, config=config, attacks=attacks)
        scored[name] = shard_map(score, sets[name], accelerator)
        advance(1)
    holdout_rows = load_tofu(data, holdout_split(config.split))
    attack = functools.partial(attack_scores, model, tokenizer, config=config)
    holdout = shard_map(attack, holdout_rows, accelerator)
    advance(1)
    # every set's questions generated together: a batch of rows that leave as they finish costs its longest row's
    # steps, so fewer, larger batches cost less (item results do not depend on the batch)
    questions = [row["question"] for rows in sets.values() for row in rows]
    generate = functools.partial(generate_answers, model, tokenizer, config=config)
    generations = iter(shard_map(generate, questions, accelerator))
    advance(1)
    results: dict = {}
    for name, (_, key, base) in SETS.items():
        items = [{**item, "generation": next(generations)} for item in scored[name]]
        results.update(set_metrics(sets[name], items, key, base, forget_set=name == "forget"))
    ratios = forget_ratios(results)
    if retain_ratios is None:
        results["forget_quality"] = {"agg_value": None, "reason": "no retain-model results given (--retain-results)"}
    else:
        if len(retain_ratios) != len(ratios):
            raise ValueError(
                f"the retain-model results hold {len(retain_ratios)} forget items but {config.split} "
                f"has {len(ratios)}; give the retain model's results for the same split and protocol"
            )
        results["forget_quality"] = {"agg_value": M.forget_quality(ratios, retain_ratios)}
    results["model_utility"] = {"agg_value": M.model_utility({k: results[k]["agg_value"] for k in M.UTILITY_KEYS})}
    forget_mia = {a: [item["mia"][a] for item in scored["forget"]] for a in config.attacks}
    results.update(mia.attack_results(forget_mia, {a: [item[a] for item in holdout] for a in config.attacks}))
    results["privleak"] = privleak_entry(results, retain_auc)
    results["_meta"] = {
        "split": config.split,
        "protocol": config.protocol,
        "template": config.template,
        "forget_items": len(ratios),
    }
    return results


def summary(results: dict) -> dict:
    """The headline numbers of a TOFU_EVAL dict."""
    names = [
        "forget_quality",
        "model_utility",
        "forget_truth_ratio",
        "forget_Q_A_Prob",
        "forget_Q_A_ROUGE",
        "exact_memorization",
        "extraction_strength",
        *M.UTILITY_KEYS,
    ]
    losses = [v["avg_loss"] for v in results["forget_Q_A_Prob"]["value_by_index"].values()]
    attacks = {key: results[key]["agg_value"] for key in mia.RESULT_KEYS.values() if key in results}
    return {
        **{n: results[n]["agg_value"] for n in names},
        **attacks,
        "privleak": results["privleak"]["agg_value"] if "privleak" in results else None,
        "forget_answer_loss_per_token": float(np.mean(losses)),
        **results["_meta"],
    }
