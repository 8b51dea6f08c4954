"""PDU's dual variable: λ ← max(0, λ + η·(L_retain − ε)) per step or per epoch, after the warm-up epochs, as
open-unlearning's ``pdu.py`` moves it; ε defaults to (1 + tolerance) × the starting model's retain loss."""

import pytest

from simnpo.losses import LossConfig, dual_ascent
from simnpo.losses.constrained import DualAscent, dual_step


def test_a_dual_step_grows_lambda_above_epsilon_and_shrinks_it_to_zero_below():
    assert dual_step(1.0, retain_loss=1.5, epsilon=1.0, step_size=2.0) == pytest.approx(2.0)
    assert dual_step(1.0, retain_loss=0.5, epsilon=1.0, step_size=1.0) == pytest.approx(0.5)
    assert dual_step(0.2, retain_loss=0.0, epsilon=1.0, step_size=1.0) == 0.0


def test_step_updates_wait_for_the_warm_up_epochs():
    dual = DualAscent(multiplier=1.0, epsilon=1.0, step_size=1.0, update="step", warmup_epochs=2)
    for epochs_done in (0, 1):
        dual.after_step(3.0, epochs_done)
        dual.after_epoch(epochs_done + 1)
        assert dual.multiplier == 1.0
    dual.after_step(3.0, 2)
    assert dual.multiplier == pytest.approx(3.0)


def test_epoch_updates_use_the_epochs_mean_retain_loss():
    dual = DualAscent(multiplier=1.0, epsilon=1.0, step_size=0.5, update="epoch")
    for loss in (1.0, 2.0, 3.0):
        dual.after_step(loss, 0)
    assert dual.multiplier == 1.0
    dual.after_epoch(1)
    assert dual.multiplier == pytest.approx(1.0 + 0.5 * (2.0 - 1.0)) and dual.epoch_losses == []


def test_epsilon_is_given_or_the_starting_retain_loss_with_a_tolerance():
    calls = []

    def start():
        calls.append(1)
        return 2.0

    assert dual_ascent(LossConfig("npo_nll"), start) is None and not calls  # no dual variable, nothing measured
    given = dual_ascent(LossConfig("pdu", retain_epsilon=0.7, retain_weight=3.0), start)
    assert (given.epsilon, given.multiplier, given.warmup_epochs) == (0.7, 3.0, 5.0) and not calls
    measured = dual_ascent(LossConfig("pdu", retain_tolerance=0.25), start)
    assert measured.epsilon == pytest.approx(2.5) and calls == [1]
