"""The membership-inference attacks' scores against their definitions written out in float64, on a batch with a
masked prompt and padding."""

import math
import zlib

import numpy as np
import pytest
import torch

from simnpo.llm import mia

# two rows: a prompt of 2 (row 0) or 1 (row 1) positions, answers of 4 and 3 tokens, row 1 padded at the end
LABELS = torch.tensor([[-100, -100, 3, 1, 4, 2], [-100, 0, 2, 4, -100, -100]])


def logits_batch(seed: int = 0) -> torch.Tensor:
    return torch.randn(2, 6, 5, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def by_hand(logits: torch.Tensor) -> list[list[tuple[float, float, float]]]:
    """Per row, for every labelled token but the last: (log p(y_t), μ_t, σ²_t) from the logits one position earlier."""
    out = []
    for row in range(LABELS.shape[0]):
        labelled = [t for t in range(LABELS.shape[1]) if LABELS[row, t] != -100][:-1]
        tokens = []
        for t in labelled:
            z = logits[row, t - 1].numpy()
            logp = z - np.log(np.exp(z).sum())
            p = np.exp(logp)
            mu = float((p * logp).sum())
            tokens.append((float(logp[LABELS[row, t]]), mu, float((p * logp**2).sum() - mu**2)))
        out.append(tokens)
    return out


def test_scored_tokens_are_the_labelled_ones_but_the_last():
    logits = logits_batch()
    logps, mask = mia.scored_tokens(logits, LABELS)
    expected = by_hand(logits)
    assert mask.sum(-1).tolist() == [3, 2]  # 4 and 3 labelled tokens, each row's last (its EOS) left out
    for row, tokens in enumerate(expected):
        assert logps[row][mask[row]].tolist() == pytest.approx([t[0] for t in tokens], abs=1e-12)
    mu, sigma2 = mia.next_token_moments(logits)
    for row, tokens in enumerate(expected):
        assert mu[row][mask[row]].tolist() == pytest.approx([t[1] for t in tokens], abs=1e-12)
        assert sigma2[row][mask[row]].tolist() == pytest.approx([t[2] for t in tokens], abs=1e-12)


def test_min_k_takes_the_lowest_k_share_and_at_least_one():
    assert mia.min_k_score([-0.1, -3.0, -0.5, -2.0, -1.0], 0.4) == pytest.approx(2.5)  # ⌊2⌋ lowest: -3, -2
    assert mia.min_k_score([-1.0, -2.0], 0.4) == pytest.approx(2.0)  # ⌊0.8⌋ = 0: the single lowest
    logits = logits_batch(1)
    logps, mask = mia.scored_tokens(logits, LABELS)
    for k in (0.2, 0.4, 1.0):
        scores = mia.min_k_scores(logps, mask, k)
        for row, tokens in enumerate(by_hand(logits)):
            values = sorted(t[0] for t in tokens)
            count = max(1, math.floor(k * len(values)))
            assert scores[row].item() == pytest.approx(-np.mean(values[:count]), abs=1e-12)
    assert mia.min_k_scores(logps, torch.zeros_like(mask), 0.4).tolist() == [0.0, 0.0]  # nothing scored: 0
    with pytest.raises(ValueError, match="k must be in"):
        mia.min_k_scores(logps, mask, 0.0)


def test_min_k_plus_plus_normalises_by_the_next_token_distribution():
    logits = logits_batch(2)
    logps, mask = mia.scored_tokens(logits, LABELS)
    mu, sigma2 = mia.next_token_moments(logits)
    scores = mia.min_k_plus_plus_scores(logps, mu, sigma2, mask, 0.4)
    for row, tokens in enumerate(by_hand(logits)):
        z = sorted((lp - m) / math.sqrt(max(s, 1e-6)) for lp, m, s in tokens)
        assert scores[row].item() == pytest.approx(-np.mean(z[: max(1, math.floor(0.4 * len(z)))]), abs=1e-12)
    # under a uniform distribution every token is as likely as the average (σ² = 0, clamped): the score is 0
    flat = torch.zeros(1, 3, 4, dtype=torch.float64)
    logps, mask = mia.scored_tokens(flat, torch.tensor([[-100, 1, 2]]))
    assert mia.min_k_plus_plus_scores(logps, *mia.next_token_moments(flat), mask, 1.0).item() == pytest.approx(0.0)


def test_loss_zlib_and_reference_scores():
    logits = logits_batch(3)
    logps, mask = mia.scored_tokens(logits, LABELS)
    losses = mia.mean_nll(logps, mask)
    for row, tokens in enumerate(by_hand(logits)):
        assert losses[row].item() == pytest.approx(-np.mean([t[0] for t in tokens]), abs=1e-12)
    texts = ["Basil Mahfouz Al-Kuwaiti was born in Kuwait City.", "é" * 40]
    expected = [losses[i].item() / len(zlib.compress(t.encode("utf-8"))) for i, t in enumerate(texts)]
    assert mia.zlib_scores(losses, texts).tolist() == pytest.approx(expected, rel=1e-12)
    assert mia.reference_scores(losses, losses - 0.5).tolist() == pytest.approx([0.5, 0.5])


def test_gradnorm_is_the_mean_parameter_gradient_norm():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    x = torch.tensor([1.0, -2.0, 0.5])
    loss = model(x).sum()  # ∂/∂W = [x; x], ∂/∂b = [1, 1]
    expected = (math.sqrt(2) * float(x.norm()) + math.sqrt(2)) / 2
    assert mia.gradnorm_score(model, loss, 2) == pytest.approx(expected, rel=1e-6)
    assert all(p.grad is None for p in model.parameters())  # cleared after
    loss = model(x).sum()
    assert mia.gradnorm_score(model, loss, float("inf")) == pytest.approx((2.0 + 1.0) / 2, rel=1e-6)
    with pytest.raises(ValueError, match="p must be 1, 2 or inf"):
        mia.gradnorm_score(model, model(x).sum(), 3)


def test_auc_and_privleak_in_open_unlearnings_direction():
    # forget items more likely (lower scores) than every holdout item: AUC 1; the other way round: 0
    assert mia.mia_auc([0.1, 0.2], [0.5, 0.7, 0.9]) == 1.0
    assert mia.mia_auc([0.5, 0.7], [0.1, 0.2]) == 0.0
    forget, holdout = [0.3, 0.6, 0.1], [0.4, 0.6, 0.2, 0.9]
    pairs = [(h > f) + 0.5 * (h == f) for f in forget for h in holdout]
    assert mia.mia_auc(forget, holdout) == pytest.approx(sum(pairs) / len(pairs))
    assert mia.privleak(0.7, 0.7) == pytest.approx(0.0, abs=1e-6)  # the retain model against itself
    assert mia.privleak(1.0) == pytest.approx(-100.0)  # a forget set told apart perfectly, against 0.5
    assert mia.privleak(0.4, 0.6) == pytest.approx((0.6 - 0.4) / 0.4 * 100)
