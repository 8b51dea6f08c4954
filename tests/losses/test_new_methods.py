"""UNDIAL, WGA, SatImp, CE-U and PDU's flattening against their papers' formulas written out by hand in float64 on
a small batch with a masked prompt and padding, and their gradients where the answer is known."""

import math

import pytest
import torch

from simnpo.losses.distribution import ceu_loss, flattening_loss, undial_loss
from simnpo.losses.token_weighted import satimp_loss, wga_loss
from simnpo.losses.tokens import token_logprobs

V = 6
# two sequences of 5 positions: row 0 has a 2-token prompt and a 3-token answer; row 1 a 1-token prompt, a 2-token
# answer and 2 padding positions (-100, as the prompt)
LABELS = torch.tensor([[-100, -100, 3, 1, 5], [-100, 2, 4, -100, -100]])


@pytest.fixture
def logits():
    torch.manual_seed(0)
    return (2 * torch.randn(2, 5, V, dtype=torch.float64)).requires_grad_()


def answer_positions(labels=LABELS):
    """(row, position t, token y) for every answer token: logits at t - 1 predict labels[t]."""
    return [
        (b, t, int(labels[b, t]))
        for b in range(labels.shape[0])
        for t in range(1, labels.shape[1])
        if labels[b, t] >= 0
    ]


def probs(z):
    e = [math.exp(v) for v in z]
    return [v / sum(e) for v in e]


def test_wga_and_satimp_are_weighted_token_means_of_the_log_probabilities(logits):
    logp, mask = token_logprobs(logits, LABELS)
    rows = answer_positions()
    z = logits.detach().tolist()
    p = [probs(z[b][t - 1])[y] for b, t, y in rows]
    for beta in (0.0, 1.0, 2.5):
        expected = sum(q**beta * math.log(q) for q in p) / len(p)
        assert wga_loss(logp, mask, beta).item() == pytest.approx(expected, rel=1e-12)
    for b1, b2 in ((5.0, 1.0), (1.0, 0.0), (0.5, 3.0)):
        expected = sum(q**b1 * (1 - q) ** b2 * math.log(q) for q in p) / len(p)
        assert satimp_loss(logp, mask, b1, b2).item() == pytest.approx(expected, rel=1e-12)
    # a global batch's share: the token sum over the given count
    assert wga_loss(logp, mask, 1.0, token_count=10.0).item() == pytest.approx(sum(q * math.log(q) for q in p) / 10)


def test_wga_stops_pushing_tokens_the_model_no_longer_predicts():
    """The gradient on a token's logit is w · (1 − p) with w = p^β held constant: as p → 0 it vanishes (β > 0), while
    gradient ascent (β = 0) keeps pushing at full strength."""
    for target, expected_shrinks in ((-12.0, True), (4.0, False)):
        z = torch.zeros(1, 2, V, dtype=torch.float64)
        z[0, 0, 2] = target
        z.requires_grad_()
        labels = torch.tensor([[-100, 2]])
        grads = {}
        for beta in (0.0, 1.0):
            logp, mask = token_logprobs(z, labels)
            (grad,) = torch.autograd.grad(wga_loss(logp, mask, beta), z)
            grads[beta] = grad[0, 0, 2].item()
        p = torch.softmax(z.detach()[0, 0], -1)[2].item()
        assert grads[0.0] == pytest.approx(1 - p) and grads[1.0] == pytest.approx(p * (1 - p))
        assert (grads[1.0] / grads[0.0] < 1e-5) == expected_shrinks  # the weight p^β vanishes as p → 0


def test_satimp_eases_tokens_the_model_is_sure_of():
    z = torch.zeros(1, 2, V, dtype=torch.float64)
    z[0, 0, 2] = 15.0  # p ≈ 1: importance (1 − p)^β2 ≈ 0
    z.requires_grad_()
    logp, mask = token_logprobs(z, torch.tensor([[-100, 2]]))
    (grad,) = torch.autograd.grad(satimp_loss(logp, mask, 1.0, 1.0), z)
    (wga,) = torch.autograd.grad(wga_loss(*token_logprobs(z, torch.tensor([[-100, 2]])), 1.0), z)
    p = torch.softmax(z.detach()[0, 0], -1)[2].item()
    assert grad[0, 0, 2].item() == pytest.approx((1 - p) * wga[0, 0, 2].item(), rel=1e-9)  # WGA's, times (1 − p)
    assert 1 - p < 1e-5  # so SatImp barely pushes a token the model is sure of


def cross_entropy(q, z):
    logsumexp = math.log(sum(math.exp(v) for v in z))
    return -sum(qv * (zv - logsumexp) for qv, zv in zip(q, z))


def test_undial_is_cross_entropy_to_the_reference_with_the_answer_token_lowered(logits):
    torch.manual_seed(1)
    ref = torch.randn(2, 5, V, dtype=torch.float64)
    z, r = logits.detach().tolist(), ref.tolist()
    for beta in (0.0, 3.0):
        terms = []
        for b, t, y in answer_positions():
            lowered = [v - (beta if k == y else 0.0) for k, v in enumerate(r[b][t - 1])]
            terms.append(cross_entropy(probs(lowered), z[b][t - 1]))
        assert undial_loss(logits, ref, LABELS, beta).item() == pytest.approx(sum(terms) / len(terms), rel=1e-12)
        # open-unlearning: every shifted position, an unlabelled one lowering vocabulary entry V - 100 (Python's
        # index wrap; with V = 6 that is entry (V - 100) % V)
        terms = []
        for b in range(2):
            for t in range(1, 5):
                y = int(LABELS[b, t]) if LABELS[b, t] >= 0 else (V - 100) % V
                lowered = [v - (beta if k == y else 0.0) for k, v in enumerate(r[b][t - 1])]
                terms.append(cross_entropy(probs(lowered), z[b][t - 1]))
        got = undial_loss(logits, ref, LABELS, beta, positions="open_unlearning").item()
        assert got == pytest.approx(sum(terms) / len(terms), rel=1e-12)


def test_undial_at_beta_zero_distils_the_reference_and_otherwise_lowers_the_answer_token(logits):
    ref = logits.detach().clone()
    (grad,) = torch.autograd.grad(undial_loss(logits, ref, LABELS, 0.0), logits)
    assert grad.abs().max().item() < 1e-12  # the model equals its teacher: nothing to learn
    (grad,) = torch.autograd.grad(undial_loss(logits, ref, LABELS, 5.0), logits)
    for b, t, y in answer_positions():
        assert grad[b, t - 1, y] > 0  # descent lowers the answer token's logit
        assert (grad[b, t - 1, torch.arange(V) != y] <= 0).all()  # and raises every other one
    assert grad[0, :1].abs().max() == 0 and grad[1, 2:].abs().max() == 0  # prompt and padding untouched


def test_ceu_is_cross_entropy_to_the_distribution_without_the_answer_token(logits):
    z = logits.detach().tolist()
    rows = answer_positions()
    for ignore in (0, 1, 2):
        kept = [(b, t, y) for b, t, y in rows if sum(1 for bb, tt, _ in rows if bb == b and tt <= t) > ignore]
        terms = []
        for b, t, y in kept:
            target = probs([v if k != y else -math.inf for k, v in enumerate(z[b][t - 1])])
            terms.append(cross_entropy(target, z[b][t - 1]))
        assert ceu_loss(logits, LABELS, ignore).item() == pytest.approx(sum(terms) / len(terms), rel=1e-12)
    (grad,) = torch.autograd.grad(ceu_loss(logits, LABELS, 0), logits)
    p = torch.softmax(logits.detach(), -1)
    for b, t, y in rows:  # d/dz_y = p_y - 0: descent lowers the answer token; the target itself carries no gradient
        assert grad[b, t - 1, y].item() == pytest.approx(p[b, t - 1, y].item() / len(rows))


def test_flattening_is_the_squared_logit_margin_over_the_answer_positions(logits):
    z = logits.detach().tolist()
    terms = [(max(z[b][t - 1]) - sum(z[b][t - 1]) / V) ** 2 for b, t, _ in answer_positions()]
    assert flattening_loss(logits, LABELS).item() == pytest.approx(sum(terms) / len(terms), rel=1e-12)
    # open-unlearning's: the logits at the answer tokens' own positions, one later
    terms = [(max(z[b][t]) - sum(z[b][t]) / V) ** 2 for b, t, _ in answer_positions()]
    assert flattening_loss(logits, LABELS, "open_unlearning").item() == pytest.approx(sum(terms) / len(terms))
    flat = torch.ones(2, 5, V, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(flattening_loss(flat, LABELS), flat)
    assert flattening_loss(flat, LABELS).item() == 0 and grad.abs().max().item() == 0  # uniform: nothing to flatten
    with pytest.raises(ValueError, match="unknown flattening positions"):
        flattening_loss(logits, LABELS, "all")
