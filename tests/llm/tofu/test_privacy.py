"""TOFU's membership-inference attacks and privleak: each attack's per-item scores against a one-item-at-a-time
computation written out here in float64, the AUC's direction on a fine-tuned target, the retain model's privleak."""

import json
import math
import zlib
from dataclasses import replace

import numpy as np
import pytest
import torch

from simnpo.llm.models import decode
from simnpo.llm.templates import TEMPLATES, encode_pair
from simnpo.llm.tofu import evaluate as E
from simnpo.llm.tofu.data import load_tofu

EVERY_ATTACK = replace(
    E.TofuEvalConfig(max_new_tokens=4, batch_size=16, generation_batch_size=16, template="llama2"),
    mia=("loss", "zlib", "min_k++", "gradnorm"),
)


@pytest.fixture(scope="module")
def reference_folder(trained_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("reference")
    trained_model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def attacked(tiny_model, tokenizer, tofu_folder, reference_folder):
    config = replace(EVERY_ATTACK, mia=(*EVERY_ATTACK.mia, "reference"), mia_reference=str(reference_folder))
    return E.evaluate_tofu(tiny_model, tokenizer, str(tofu_folder), config)


def mean_nll(model, tokenizer, question: str, answer: str) -> float:
    ids, labels = encode_pair(tokenizer, TEMPLATES["llama2"], question, answer)
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].double(), -1)
    return -float(np.mean([logp[t - 1, labels[t]].item() for t in range(len(ids)) if labels[t] != -100]))


def one_item(model, tokenizer, question: str, answer: str, k: float = 0.4) -> dict[str, float]:
    """Every attack's score of one item, its answer scored alone, unpadded, in float64 (gradients in float32)."""
    ids, labels = encode_pair(tokenizer, TEMPLATES["llama2"], question, answer)
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].double(), -1)
    answer_positions = [t for t in range(len(ids)) if labels[t] != -100]
    nll = [-logp[t - 1, labels[t]].item() for t in answer_positions]  # LOSS: every answer token, EOS included
    scored = answer_positions[:-1]  # the others: the EOS left out
    lps = sorted(logp[t - 1, labels[t]].item() for t in scored)
    z = []
    for t in scored:
        p = logp[t - 1].exp()
        mu = (p * logp[t - 1]).sum().item()
        var = max((p * logp[t - 1] ** 2).sum().item() - mu**2, 1e-6)
        z.append((logp[t - 1, labels[t]].item() - mu) / math.sqrt(var))
    count = max(1, int(len(scored) * k))
    model.zero_grad()
    out = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0], -1)
    loss = -torch.stack([out[t - 1, labels[t]] for t in scored]).mean()
    loss.backward()
    norms = [p.grad.norm(2).item() for p in model.parameters() if p.grad is not None]
    model.zero_grad()
    text = decode(tokenizer, [labels[t] for t in answer_positions])
    return {
        "mia_loss": float(np.mean(nll)),
        "mia_zlib": float(np.mean(nll)) / len(zlib.compress(text.encode("utf-8"))),
        "mia_min_k": -float(np.mean(lps[:count])),
        "mia_min_k_plus_plus": -float(np.mean(sorted(z)[:count])),
        "mia_gradnorm": float(np.mean(norms)),
    }


def test_every_attack_scores_each_item_as_one_item_at_a_time(
    attacked, tiny_model, trained_model, tokenizer, tofu_folder
):
    for side, split in (("forget", "forget10_perturbed"), ("holdout", "holdout10")):
        rows = load_tofu(tofu_folder, split)
        assert len(attacked["mia_min_k"][side]["value_by_index"]) == len(rows)
        for i in (0, 7, len(rows) - 1):
            question, answer = rows[i]["question"], rows[i]["answer"]
            expected = one_item(tiny_model, tokenizer, question, answer)
            reference = mean_nll(tiny_model, tokenizer, question, answer) - mean_nll(
                trained_model, tokenizer, question, answer
            )
            expected["mia_reference"] = reference
            for key, value in expected.items():
                got = attacked[key][side]["value_by_index"][str(i)]["score"]
                assert got == pytest.approx(value, rel=1e-5), (side, i, key)


def test_results_in_open_unlearnings_layout_and_privleak_against_half(attacked):
    for key in ("mia_loss", "mia_zlib", "mia_min_k", "mia_min_k_plus_plus", "mia_gradnorm", "mia_reference"):
        entry = attacked[key]
        scores = {side: [v["score"] for v in entry[side]["value_by_index"].values()] for side in ("forget", "holdout")}
        # the AUC by hand: the share of (forget, holdout) pairs where the holdout item scores higher, ties half
        pairs = [(h > f) + 0.5 * (h == f) for f in scores["forget"] for h in scores["holdout"]]
        assert entry["auc"] == entry["agg_value"] == pytest.approx(sum(pairs) / len(pairs))
        assert entry["forget"]["agg_value"] == pytest.approx(np.mean(scores["forget"]))
    auc = attacked["mia_min_k"]["agg_value"]
    assert (
        attacked["privleak"]["reference_auc"] == 0.5 and "no retain-model results" in attacked["privleak"]["reference"]
    )
    assert attacked["privleak"]["agg_value"] == pytest.approx((0.5 - auc) / 0.5 * 100)
    assert E.summary(attacked)["privleak"] == attacked["privleak"]["agg_value"]


def test_the_reference_model_is_loaded_once_for_every_evaluation_of_a_process(
    tiny_model, tokenizer, tofu_folder, reference_folder, attacked, monkeypatch
):
    from simnpo.llm import models

    loads = []
    real = models.load_reference_model
    monkeypatch.setattr(models, "load_reference_model", lambda *args: loads.append(args[0]) or real(*args))
    monkeypatch.setattr(models, "_REFERENCE_LOSSES", {})  # nothing remembered from the other tests
    config = replace(EVERY_ATTACK, mia=("reference",), mia_reference=str(reference_folder))
    first = E.evaluate_tofu(tiny_model, tokenizer, str(tofu_folder), config)
    assert loads == [str(reference_folder)] * 2  # the forget items, then the holdout items
    again = E.evaluate_tofu(tiny_model, tokenizer, str(tofu_folder), config)  # e.g. the next epoch's evaluation
    assert len(loads) == 2 and again["mia_reference"] == first["mia_reference"] == attacked["mia_reference"]
    E.evaluate_tofu(tiny_model, tokenizer, str(tofu_folder), replace(config, split="forget05"))
    assert len(loads) == 4  # other items: computed anew


def test_privleak_of_the_built_in_run(small_runs):
    """The retain model's privleak is 0 against its own results; the fine-tuned target tells its forget items from
    the holdout ones (AUC above 0.5: the forget answers more likely), so its privleak is negative."""
    run = small_runs / "llm"
    retain = json.loads((run / "retain" / "TOFU_EVAL.json").read_text())
    target = json.loads((run / "target" / "TOFU_EVAL.json").read_text())
    assert retain["privleak"]["agg_value"] == 0.0 and retain["privleak"]["reference"] == "itself"
    assert target["mia_min_k"]["agg_value"] > 0.5
    assert target["privleak"]["reference_auc"] == retain["mia_min_k"]["agg_value"]
    assert target["privleak"]["agg_value"] < 0


@pytest.mark.parametrize(
    "mia, message",
    [("loss,minkk", "unknown attack 'minkk'; use one of loss, zlib"), ("reference", "give --mia-reference MODEL")],
)
def test_bad_attacks_are_refused(mia, message):
    with pytest.raises(ValueError, match=message):
        E.TofuEvalConfig(mia=mia)
