"""The loss library against closed forms and hand-computed values (docs/conventions.md)."""

import math

import pytest
import torch
import torch.nn.functional as F

from simnpo import losses as L


@pytest.fixture(autouse=True)
def float64():
    """Closed forms are checked in double precision; the default is restored for other test modules."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def logits_from_probs(probs):
    """Logits whose softmax is exactly ``probs`` (rows sum to 1)."""
    return torch.tensor(probs).log()


# ----------------------------------------------------------------------------------------- sequence_logprobs
def test_sequence_logprobs_hand_built_example_with_prompt_and_padding():
    # vocab 3; sequence 0: [prompt p, prompt p, a1, a2, eos], sequence 1: [prompt, a1, eos, pad, pad].
    # Position t predicts token t+1, so the answer tokens at positions 2,3,4 are read from logits 1,2,3.
    p = [[0.2, 0.3, 0.5], [0.1, 0.6, 0.3], [0.7, 0.2, 0.1], [0.25, 0.25, 0.5], [0.4, 0.4, 0.2]]
    q = [[0.5, 0.4, 0.1], [0.3, 0.3, 0.4], [0.9, 0.05, 0.05], [0.2, 0.2, 0.6], [0.1, 0.1, 0.8]]
    logits = torch.stack([logits_from_probs(p), logits_from_probs(q)])
    labels = torch.tensor([[-100, -100, 1, 0, 2], [-100, 2, 0, -100, -100]])
    logps, lengths = L.sequence_logprobs(logits, labels)
    # seq 0: token 1 from row 1 (0.6), token 0 from row 2 (0.7), token 2 from row 3 (0.5)
    # seq 1: token 2 from row 0 (0.1), token 0 from row 1 (0.3); the padding rows count for nothing
    assert lengths.tolist() == [3, 2]
    assert logps[0].item() == pytest.approx(math.log(0.6) + math.log(0.7) + math.log(0.5), abs=1e-12)
    assert logps[1].item() == pytest.approx(math.log(0.1) + math.log(0.3), abs=1e-12)


def test_token_logprobs_matches_cross_entropy_and_is_zero_where_masked():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 7, 11, generator=g)
    labels = torch.randint(0, 11, (3, 7), generator=g)
    labels[0, :3] = -100
    labels[2, 5:] = -100
    logp, mask = L.token_logprobs(logits, labels)
    ce = F.cross_entropy(logits[:, :-1].reshape(-1, 11), labels[:, 1:].reshape(-1), reduction="none")
    assert torch.allclose(logp.reshape(-1), -ce, atol=1e-6)
    assert mask.sum().item() == (labels[:, 1:] != -100).sum().item()
    assert (logp[~mask] == 0).all()


def test_sequence_logprobs_gradient_flows_to_logits():
    logits = torch.zeros(1, 3, 4, requires_grad=True)
    logps, _ = L.sequence_logprobs(logits, torch.tensor([[-100, 1, 2]]))
    logps.sum().backward()
    # d log softmax_k / d logit_j = 1[j=k] - 1/4 at uniform logits
    assert logits.grad[0, 0].tolist() == pytest.approx([-0.25, 0.75, -0.25, -0.25])
    assert logits.grad[0, 2].abs().sum().item() == 0  # the last position predicts nothing


# ----------------------------------------------------------------------------------------- forget losses
@pytest.mark.parametrize("beta", [0.1, 1.0, 4.5])
def test_npo_equals_two_over_beta_log2_at_the_reference(beta):
    logps = torch.tensor([-3.0, -40.0, -0.5])
    assert L.npo_loss(logps, logps.clone(), beta).item() == pytest.approx(2 / beta * math.log(2))


def test_npo_closed_form_off_the_reference():
    beta, d = 0.5, torch.tensor([-2.0, 1.0])  # log π_θ - log π_ref
    expected = sum(2 / beta * math.log(1 + math.exp(beta * x)) for x in d.tolist()) / 2
    assert L.npo_loss(d, torch.zeros(2), beta).item() == pytest.approx(expected)


def test_ga_is_minus_token_mean_nll():
    logps, lengths = torch.tensor([-6.0, -2.0]), torch.tensor([3, 1])
    assert L.ga_loss(logps, lengths).item() == pytest.approx(-8.0 / 4)
    assert L.nll_loss(logps, lengths).item() == pytest.approx(8.0 / 4)


def test_token_means_over_micro_batches_equal_the_global_batch_token_mean():
    # a global batch of 4 sequences (10 tokens) split into 2 micro-batches of 2: with token_count = N / 2 the mean
    # of the two micro-batch losses is the global token mean 20/10, whatever the split's token counts (3 + 7)
    logps, lengths = torch.tensor([-1.0, -2.0, -8.0, -9.0]), torch.tensor([1, 2, 3, 4])
    halves = [L.nll_loss(logps[i : i + 2], lengths[i : i + 2], token_count=10 / 2) for i in (0, 2)]
    assert sum(h.item() for h in halves) / 2 == pytest.approx(20.0 / 10)
    assert L.nll_loss(logps, lengths).item() == pytest.approx(20.0 / 10)
    # per-micro-batch means would weight the short micro-batch's tokens more: (3/3 + 17/7) / 2
    assert sum(L.nll_loss(logps[i : i + 2], lengths[i : i + 2]).item() for i in (0, 2)) / 2 != pytest.approx(2.0)
    assert L.ga_loss(logps[:2], lengths[:2], token_count=5.0).item() == pytest.approx(-3.0 / 5)


def test_simnpo_closed_form():
    beta, margin = 2.5, 0.3
    logps, lengths = torch.tensor([-10.0, -1.0]), torch.tensor([5, 2])
    z = [-beta * -10.0 / 5 - margin, -beta * -1.0 / 2 - margin]
    expected = sum(-2 / beta * math.log(1 / (1 + math.exp(-x))) for x in z) / 2
    assert L.simnpo_loss(logps, lengths, beta, margin).item() == pytest.approx(expected)


def test_simnpo_margin_conventions_agree_after_beta_scaling():
    beta, code_margin = 4.5, 0.2
    logps, lengths = torch.tensor([-10.0, -3.0, -50.0]), torch.tensor([5, 2, 20])
    paper = L.simnpo_loss(logps, lengths, beta, margin=beta * code_margin, margin_convention="paper")
    code = L.simnpo_loss(logps, lengths, beta, margin=code_margin, margin_convention="authors_code")
    assert paper.item() == pytest.approx(code.item())
    assert L.simnpo_loss(logps, lengths, beta, margin=code_margin).item() != pytest.approx(code.item())
    w_paper = L.simnpo_weights(logps, lengths, beta, beta * code_margin)
    w_code = L.simnpo_weights(logps, lengths, beta, code_margin, "authors_code")
    assert torch.allclose(w_paper, w_code)


def test_simnpo_small_beta_is_length_normalised_gradient_ascent():
    beta = 1e-5
    logps = torch.tensor([-10.0, -3.0, -50.0], requires_grad=True)
    lengths = torch.tensor([5, 2, 20])
    loss = L.simnpo_loss(logps, lengths, beta)
    # value: (2/β) log 2 + mean(log π / |y|), the length-normalised log-likelihood that GA pushes down
    normalised = (logps / lengths).mean()
    assert (loss - 2 / beta * math.log(2)).item() == pytest.approx(normalised.item(), abs=1e-4)
    (grad,) = torch.autograd.grad(loss, logps)
    assert torch.allclose(grad, 1 / (3 * lengths.double()), rtol=1e-4)


def test_dpo_reduces_to_npo_without_the_chosen_term_and_is_log2_at_reference():
    beta = 0.7
    rejected, ref_rejected = torch.tensor([-4.0, -9.0]), torch.tensor([-3.0, -12.0])
    chosen = torch.tensor([-2.0, -5.0])
    assert L.dpo_loss(chosen, rejected, chosen, ref_rejected, beta).item() == pytest.approx(
        L.npo_loss(rejected, ref_rejected, beta).item()
    )
    assert L.dpo_loss(chosen, rejected, chosen, rejected, beta).item() == pytest.approx(2 / beta * math.log(2))
    # raising the refusal's likelihood lowers the loss
    assert L.dpo_loss(chosen + 1, rejected, chosen, ref_rejected, beta) < L.dpo_loss(
        chosen, rejected, chosen, ref_rejected, beta
    )


# ----------------------------------------------------------------------------------------- gradient weights
def test_npo_weights_are_autograd_gradients():
    beta = 0.8
    logps = torch.tensor([-3.0, -20.0, -0.1, -7.0], requires_grad=True)
    ref = torch.tensor([-5.0, -15.0, -0.1, -30.0])
    (grad,) = torch.autograd.grad(L.npo_loss(logps, ref, beta), logps)
    w = L.npo_weights(logps.detach(), ref, beta)
    assert torch.allclose(grad * len(logps), w)  # the batch mean divides each by B
    # closed form 2π^β / (π^β + π_ref^β), and w = 1 at the reference
    pb, rb = (beta * logps.detach()).exp(), (beta * ref).exp()
    assert torch.allclose(w, 2 * pb / (pb + rb))
    assert w[2].item() == pytest.approx(1.0)


@pytest.mark.parametrize("margin", [0.0, 1.5])
def test_simnpo_weights_are_autograd_gradients(margin):
    beta = 2.5
    logps = torch.tensor([-3.0, -20.0, -0.1], requires_grad=True)
    lengths = torch.tensor([3, 40, 1])
    (grad,) = torch.autograd.grad(L.simnpo_loss(logps, lengths, beta, margin), logps)
    w = L.simnpo_weights(logps.detach(), lengths, beta, margin)
    assert torch.allclose(grad * len(logps), w)
    pairs = zip([-3.0, -20.0, -0.1], [3, 40, 1])
    expected = [2 / n * (1 / (1 + math.exp(-(beta * lp / n + margin)))) for lp, n in pairs]
    assert w.tolist() == pytest.approx(expected)


# ----------------------------------------------------------------------------------------- KL retain term
def test_kl_to_reference_hand_computed_on_response_positions():
    p_ref = [[0.5, 0.5], [0.9, 0.1], [0.5, 0.5]]
    p_model = [[0.5, 0.5], [0.6, 0.4], [0.1, 0.9]]
    ref_logits, logits = logits_from_probs([p_ref]), logits_from_probs([p_model])
    # only position 1 predicts a label (label at 2); positions 0 and 2 are prompt/last
    labels = torch.tensor([[-100, -100, 1]])
    kl1 = 0.9 * math.log(0.9 / 0.6) + 0.1 * math.log(0.1 / 0.4)
    kl2 = 0.5 * math.log(0.5 / 0.1) + 0.5 * math.log(0.5 / 0.9)
    assert L.kl_to_reference(logits, ref_logits, labels).item() == pytest.approx(kl1)
    assert L.kl_to_reference(logits, ref_logits, labels, positions="all").item() == pytest.approx((kl1 + kl2) / 3)
    assert L.kl_to_reference(ref_logits, ref_logits, labels).item() == pytest.approx(0.0, abs=1e-12)
    # a given token count divides the response positions' sum (the global batch's share); "all" stays per batch
    assert L.kl_to_reference(logits, ref_logits, labels, token_count=4.0).item() == pytest.approx(kl1 / 4)
    all_positions = L.kl_to_reference(logits, ref_logits, labels, positions="all", token_count=4.0)
    assert all_positions.item() == pytest.approx((kl1 + kl2) / 3)


# ----------------------------------------------------------------------------------------- methods and config
LABELS = torch.tensor([[-100, 3, 4, 1, 2], [-100, -100, 5, 6, -100]])


def memorised_logits(generator, scale=1.0):
    """Logits [2, 5, 7] whose labelled tokens are the favourites (a memorised forget set), as a leaf tensor."""
    logits = torch.randn(2, 5, 7, generator=generator)
    for b, t in zip(*torch.nonzero(LABELS[:, 1:] != -100, as_tuple=True)):
        logits[b, t, LABELS[b, t + 1]] += 4.0
    return (scale * logits).requires_grad_()


def make_inputs():
    """Every output of a forget, a retain and a refusal batch under the policy and the reference, as the trainers
    gather them (``outputs_of``); the forget logits are a leaf to differentiate."""
    g = torch.Generator().manual_seed(1)
    forget, retain, refusal = memorised_logits(g), memorised_logits(g), memorised_logits(g)
    wanted = [o for o in L.OUTPUTS if o != "hidden"]
    noisy = lambda z: z.detach() + 0.3 * torch.randn(z.shape, generator=g)  # noqa: E731
    return L.LossInputs(
        forget=L.outputs_of(forget, LABELS, wanted),
        retain=L.outputs_of(retain, LABELS, wanted),
        refusal=L.outputs_of(refusal, LABELS, wanted),
        reference={
            "forget": L.outputs_of(noisy(forget), LABELS, wanted),
            "retain": L.outputs_of(noisy(retain), LABELS, wanted),
            "refusal": L.outputs_of(noisy(refusal), LABELS, wanted),
        },
    ), forget


def test_methods_combine_forget_and_retain_terms_with_weights():
    x, _ = make_inputs()
    cfg = L.LossConfig(method="simnpo_nll", beta=4.5, forget_weight=0.125, retain_weight=1.0)
    loss, parts = L.unlearning_loss(x, cfg)
    nll = -x.retain.logps.sum() / x.retain.lengths.sum()
    expected = 0.125 * L.simnpo_loss(x.forget.logps, x.forget.lengths, 4.5) + nll
    assert loss.item() == pytest.approx(expected.item())
    assert parts["retain"].item() == pytest.approx(nll.item())

    loss, parts = L.unlearning_loss(x, L.LossConfig(method="npo_kl", beta=0.1, retain_weight=2.0))
    kl = L.kl_to_reference(x.retain.logits, x.reference["retain"].logits, LABELS)
    assert kl.item() > 0
    npo = L.npo_loss(x.forget.logps, x.reference["forget"].logps, 0.1)
    assert loss.item() == pytest.approx((npo + 2 * kl).item())

    loss, _ = L.unlearning_loss(x, L.LossConfig(method="graddiff"))
    ga = x.forget.logps.sum() / x.forget.lengths.sum()
    assert loss.item() == pytest.approx((ga + nll).item())
    # a trainer's own retain weight (PDU's dual variable) replaces the configured one
    loss, _ = L.unlearning_loss(x, L.LossConfig(method="pdu"), retain_weight=3.0)
    assert loss.item() == pytest.approx((L.flattening_loss(x.forget.logits, LABELS) + 3 * nll).item())


# RMU acts on activations, not log-probabilities: its own tests below
@pytest.mark.parametrize("method", [m for m in L.METHODS if m != "rmu"])
def test_every_method_gives_a_finite_loss_whose_gradient_lowers_forget_likelihood(method):
    """A small step against each method's gradient, on a memorised forget set's logits, lowers the forget answers'
    log-likelihood (UNDIAL at its β 10 against a reference near the model)."""
    x, forget = make_inputs()
    loss, parts = L.unlearning_loss(x, L.LossConfig(method=method))
    assert torch.isfinite(loss)
    (grad,) = torch.autograd.grad(loss, forget)
    before = x.forget.logps.detach()
    after, _ = L.sequence_logprobs(forget.detach() - 0.05 * grad / grad.norm(), LABELS)
    assert (after < before).all()
    assert ("retain" in parts) == (L.METHODS[method][1] is not None)


def test_reads_say_what_each_method_reads_and_whether_it_keeps_a_reference_model():
    reads = {m: set(L.method_reads(m)) for m in L.METHODS}
    assert reads["simnpo"] == {L.Read("forget", "sequence")}
    assert not any(r.reference for r in reads["simnpo_nll"])
    assert L.Read("forget", "sequence", reference=True) in reads["npo"] and not L.keeps_reference_model(reads["npo"])
    assert L.keeps_reference_model(reads["simnpo_kl"]) and L.keeps_reference_model(reads["undial"])
    assert {L.Read("refusal", "sequence"), L.Read("refusal", "sequence", True)} <= reads["idkpo"]
    assert reads["wga"] == {L.Read("forget", "tokens"), L.Read("retain", "sequence")}
    assert reads["ceu"] == {L.Read("forget", "logits")}


def test_gather_inputs_runs_each_batch_and_model_once_with_everything_read_of_it():
    calls = []

    def forward(batch, reference, wanted):
        calls.append((batch, reference, wanted))
        return L.outputs_of(torch.randn(2, 5, 7), LABELS, wanted)

    x = L.gather_inputs(L.method_reads("npo_kl"), forward)
    assert sorted(calls) == [
        ("forget", False, frozenset({"sequence"})),
        ("forget", True, frozenset({"sequence"})),
        ("retain", False, frozenset({"logits"})),
        ("retain", True, frozenset({"logits"})),
    ]
    assert x.retain.logits is not None and x.retain.logps is None and x.refusal is None


def test_each_method_takes_its_published_defaults_and_the_given_values_win():
    assert L.LossConfig("npo_kl").beta == 0.1 and L.LossConfig("simnpo_nll").beta == 4.5
    undial = L.LossConfig("undial")
    assert (undial.beta, undial.retain_weight) == (10.0, 0.0)  # open-unlearning's UNDIAL.yaml
    satimp = L.LossConfig("satimp")
    assert (satimp.beta, satimp.beta2, satimp.forget_weight) == (5.0, 1.0, 0.1)
    pdu = L.LossConfig("pdu")
    assert (pdu.dual_step_size, pdu.dual_update, pdu.dual_warmup_epochs) == (1.0, "step", 5.0)
    assert L.LossConfig("satimp", beta2=0.0, forget_weight=1.0).forget_weight == 1.0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"beta": 0.0}, "beta must be a finite number > 0"),
        ({"beta": -1.0}, "beta must be"),
        ({"beta": float("nan")}, "beta must be"),
        ({"margin": -0.1}, "margin must be a finite number >= 0"),
        ({"forget_weight": -1.0}, "forget_weight must be"),
        ({"retain_weight": float("inf")}, "retain_weight must be"),
        ({"method": "npo_sim"}, "unknown method 'npo_sim'; use one of ga, graddiff"),
        ({"margin_convention": "code"}, "use one of paper, authors_code"),
        ({"kl_positions": "prompt"}, "use one of response, all"),
        ({"method": "undial", "undial_positions": "all"}, "use one of answer, open_unlearning"),
        ({"method": "pdu", "dual_update": "batch"}, "use one of step, epoch"),
        ({"method": "satimp", "beta2": -1.0}, "beta2 must be"),
        ({"method": "pdu", "retain_epsilon": 0.0}, "retain_epsilon must be a finite number > 0"),
        ({"method": "pdu", "retain_epsilon": -0.5}, "retain_epsilon must be"),
        ({"method": "pdu", "dual_step_size": -1.0}, "dual_step_size must be"),
        ({"method": "ceu", "ignore_first_answer_tokens": -1}, "ignore_first_answer_tokens must be"),
    ],
)
def test_bad_hyperparameters_say_what_is_allowed(kwargs, message):
    with pytest.raises(ValueError, match=message):
        L.LossConfig(**kwargs)


def test_half_precision_logits_are_scored_in_float32():
    logits = torch.randn(2, 4, 9).to(torch.bfloat16)
    labels = torch.tensor([[-100, 1, 2, 3], [-100, -100, 4, 5]])
    logps, lengths = L.sequence_logprobs(logits, labels)
    assert logps.dtype == torch.float32
    exact, _ = L.sequence_logprobs(logits.double(), labels)
    assert torch.allclose(logps.double(), exact, atol=1e-5)


# ----------------------------------------------------------------------------------------- RMU
def test_rmu_control_is_a_seeded_nonnegative_direction_of_length_c():
    control = L.rmu_control(16, steering=6.5, seed=3)
    assert control.norm().item() == pytest.approx(6.5) and (control >= 0).all()
    assert torch.equal(control, L.rmu_control(16, 6.5, 3)) and not torch.equal(control, L.rmu_control(16, 6.5, 4))


def test_rmu_terms_are_token_means_of_the_squared_error_over_the_hidden_dimension():
    hidden = torch.tensor([[[1.0, 3.0], [0.0, 0.0], [5.0, 5.0]]])  # [batch 1, seq 3, d 2]
    mask = torch.tensor([[True, True, False]])  # the third position does not count
    control = torch.tensor([1.0, 1.0])
    # position 0: ((0)² + (2)²)/2 = 2; position 1: (1 + 1)/2 = 1; mean over the 2 counted tokens = 1.5
    assert L.rmu_forget_loss(hidden, mask, control).item() == pytest.approx(1.5)
    assert L.rmu_forget_loss(hidden, mask, control, token_count=6.0).item() == pytest.approx(3.0 / 6)
    frozen = hidden.clone()
    frozen[0, 0, 1] = 1.0  # only position 0 differs: (0 + 2²)/2 = 2, over 2 tokens = 1
    assert L.rmu_retain_loss(hidden, frozen, mask).item() == pytest.approx(1.0)
    assert L.rmu_retain_loss(hidden, hidden, mask).item() == 0.0


def test_rmu_method_weights_its_two_terms():
    hidden, labels = torch.ones(2, 3, 4), torch.tensor([[-100, 1, 2], [-100, 3, 4]])
    logits = torch.zeros(2, 3, 5)
    inputs = L.LossInputs(
        forget=L.outputs_of(logits, labels, {"hidden"}, hidden[:, :-1]),
        retain=L.outputs_of(logits, labels, {"hidden"}, hidden[:, :-1]),
        reference={"retain": L.outputs_of(logits, labels, {"hidden"}, 3 * hidden[:, :-1])},
        control=torch.zeros(4),
    )
    loss, parts = L.unlearning_loss(inputs, L.LossConfig("rmu", forget_weight=2.0, retain_weight=100.0))
    assert parts["forget"].item() == pytest.approx(1.0) and parts["retain"].item() == pytest.approx(4.0)
    assert loss.item() == pytest.approx(2.0 * 1.0 + 100.0 * 4.0)
    assert set(L.method_reads("rmu")) == {
        L.Read("forget", "hidden"),
        L.Read("retain", "hidden"),
        L.Read("retain", "hidden", reference=True),
    }
