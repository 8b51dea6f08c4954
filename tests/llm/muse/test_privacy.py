"""The membership-inference attacks on MUSE's PrivLeak texts: each text's score under each attack against a one-text-
at-a-time computation written out here in float64, the results in open-unlearning's layout, Min-K% equal to PrivLeak's
own scores."""

import math
import zlib

import numpy as np
import pytest
import torch

from simnpo.llm.models import load_model, load_tokenizer
from simnpo.llm.muse import evaluate as E
from simnpo.llm.muse.data import load_muse

ATTACKS = ("loss", "zlib", "min_k", "min_k++", "gradnorm", "reference")
KEYS = ("mia_loss", "mia_zlib", "mia_min_k", "mia_min_k_plus_plus", "mia_gradnorm", "mia_reference")


@pytest.fixture(scope="module")
def attacked(small_muse, tmp_path_factory):
    data, folder = small_muse
    model, tokenizer = load_model(folder), load_tokenizer(folder)
    reference = load_model(folder)
    torch.manual_seed(0)
    with torch.no_grad():  # a reference model far from the attacked one (a score of two close losses would be noise)
        for p in reference.parameters():
            p.add_(0.5 * torch.randn_like(p))
    reference_folder = tmp_path_factory.mktemp("muse-reference")
    reference.save_pretrained(reference_folder)
    config = E.MuseEvalConfig(
        verbmem_tokens=2, knowmem_tokens=2, batch_size=3, mia=ATTACKS, mia_reference=str(reference_folder)
    )
    results = E.evaluate_muse(model, tokenizer, str(data), config, retrain_auc=0.5)
    return data, model, reference, tokenizer, results


def one_text(model, reference, tokenizer, text: str, k: float = 0.4) -> dict[str, float]:
    """Every attack's score of one whole text, unpadded, in float64 (gradients in float32)."""
    ids = tokenizer(text)["input_ids"]
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].double(), -1)
        theirs = torch.log_softmax(reference(input_ids=torch.tensor([ids])).logits[0].double(), -1)
    token_lp = [logp[t - 1, ids[t]].item() for t in range(1, len(ids))]
    nll = -float(np.mean(token_lp))
    z = []
    for t in range(1, len(ids)):
        p = logp[t - 1].exp()
        mu = (p * logp[t - 1]).sum().item()
        z.append((logp[t - 1, ids[t]].item() - mu) / math.sqrt((p * (logp[t - 1] - mu) ** 2).sum().item()))
    count = max(1, int(len(token_lp) * k))
    model.zero_grad()
    out = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0], -1)
    (-torch.stack([out[t - 1, ids[t]] for t in range(1, len(ids))]).mean()).backward()
    norms = [p.grad.norm(2).item() for p in model.parameters() if p.grad is not None]
    model.zero_grad()
    return {
        "mia_loss": nll,
        "mia_zlib": nll / len(zlib.compress(text.encode("utf-8"))),
        "mia_min_k": -float(np.mean(sorted(token_lp)[:count])),
        "mia_min_k_plus_plus": -float(np.mean(sorted(z)[:count])),
        "mia_gradnorm": float(np.mean(norms)),
        "mia_reference": nll + float(np.mean([theirs[t - 1, ids[t]].item() for t in range(1, len(ids))])),
    }


def test_every_attack_scores_each_text_as_one_text_at_a_time(attacked):
    data, model, reference, tokenizer, results = attacked
    for side in ("forget", "holdout"):
        texts = [r["text"] for r in load_muse(data, "privleak", side)]
        assert len({len(tokenizer(t)["input_ids"]) for t in texts}) > 1  # the premise: batches are padded
        for i, text in enumerate(texts):
            expected = one_text(model, reference, tokenizer, text)
            for key in KEYS:
                got = results[key][side]["value_by_index"][str(i)]["score"]
                assert got == pytest.approx(expected[key], rel=1e-5), (key, side, i)


def test_results_in_open_unlearnings_layout_and_min_k_is_privleaks_own(attacked):
    _, _, _, _, results = attacked
    for key in KEYS:
        entry = results[key]
        assert set(entry) == {"forget", "holdout", "auc", "agg_value"} and entry["auc"] == entry["agg_value"]
        assert 0 <= entry["auc"] <= 1
    forget = [v["score"] for v in results["mia_min_k"]["forget"]["value_by_index"].values()]
    assert forget == pytest.approx(results["privleak"]["forget_scores"])
    # open-unlearning's direction (forget 0, holdout 1 by score): the complement of MUSE's PrivLeak AUC
    assert results["mia_min_k"]["auc"] == pytest.approx(1 - results["privleak"]["auc"])
    assert E.muse_summary(results)["mia_zlib"] == results["mia_zlib"]["agg_value"]


def test_the_attacks_score_the_texts_in_privleaks_own_pass_and_leave_privleak_unchanged(attacked):
    data, model, _, tokenizer, results = attacked
    config = E.MuseEvalConfig(verbmem_tokens=2, knowmem_tokens=2, batch_size=3)
    forwards = []
    hook = model.register_forward_hook(lambda module, args, output: forwards.append(1))
    try:
        plain = E.evaluate_muse(model, tokenizer, str(data), config, retrain_auc=0.5)
        without = len(forwards)
        in_batch = ("loss", "zlib", "min_k", "min_k++")
        attacked_too = E.evaluate_muse(
            model, tokenizer, str(data), E.MuseEvalConfig(**{**vars(config), "mia": in_batch}), 0.5
        )
    finally:
        hook.remove()
    assert without > 0 and len(forwards) == 2 * without  # not one pass more for the attacks
    assert attacked_too["privleak"] == plain["privleak"] == results["privleak"]  # the same numbers, to the bit
    assert {f"mia_{a}" for a in ("loss", "zlib", "min_k")} <= set(attacked_too)


@pytest.mark.parametrize(
    "values, message",
    [({"mia": "loss,nosuch"}, "unknown attack 'nosuch'"), ({"mia": "reference"}, "--mia-reference MODEL")],
)
def test_bad_attacks_are_one_line(values, message):
    with pytest.raises(ValueError, match=message):
        E.MuseEvalConfig(**values)
