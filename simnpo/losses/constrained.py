"""PDU's dual variable (Entesari et al. 2025, "Constrained Entropic Unlearning: A Primal-Dual Framework for Large
Language Models"): minimise L_forget subject to L_retain ≤ ε through the Lagrangian γ·L_forget + λ·(L_retain − ε),
the multiplier λ ≥ 0 moved by dual ascent, λ ← max(0, λ + η·(L_retain − ε)), after each step or each epoch once the
warm-up epochs are over, as open-unlearning's ``pdu.py`` does. The trainers keep one ``DualAscent`` per run and
pass its λ as the retain weight (the constant −λ·ε, which carries no gradient, is left out of the reported loss).
"""

from __future__ import annotations

from dataclasses import dataclass, field


def dual_step(multiplier: float, retain_loss: float, epsilon: float, step_size: float) -> float:
    """One dual-ascent step: λ grows while the retain loss is above ε and shrinks, down to 0, while it is below."""
    return max(0.0, multiplier + step_size * (retain_loss - epsilon))


@dataclass
class DualAscent:
    """λ over a run: ``update`` "step" moves it after every optimiser step, "epoch" after every epoch with that
    epoch's mean retain loss; neither before ``warmup_epochs`` epochs have ended (open-unlearning: 5)."""

    multiplier: float
    epsilon: float
    step_size: float
    update: str = "step"
    warmup_epochs: float = 0.0
    epoch_losses: list[float] = field(default_factory=list)  # this epoch's retain losses so far

    def after_step(self, retain_loss: float, epochs_done: int) -> None:
        """After a step (its global batch's retain loss) of the epoch following ``epochs_done`` finished epochs."""
        self.epoch_losses.append(retain_loss)
        if self.update == "step" and epochs_done >= self.warmup_epochs:
            self.multiplier = dual_step(self.multiplier, retain_loss, self.epsilon, self.step_size)

    def after_epoch(self, epochs_done: int) -> None:
        """After ``epochs_done`` epochs (counting the one that just ended), with that epoch's mean retain loss (the
        steps' as they ran; open-unlearning measures the retain set again after the epoch)."""
        if self.update == "epoch" and epochs_done >= self.warmup_epochs and self.epoch_losses:
            mean = sum(self.epoch_losses) / len(self.epoch_losses)
            self.multiplier = dual_step(self.multiplier, mean, self.epsilon, self.step_size)
        self.epoch_losses = []
