"""The NPO and SimNPO gradient weights as functions of the sequence log-likelihood: the reference-model bias.

Each loss's gradient is w · ∇ log π_θ(y|x) per example (docs/conventions.md). The top row plots w itself; the bottom row
plots |y|·w, the weight on the length-normalised gradient ∇ log π_θ(y|x)/|y|, i.e. how hard each response is
pushed per token. NPO's |y|·w grows with the response length and hinges on the reference model; SimNPO's does
neither (paper Sec. 4, Eq. 5-6).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from simnpo.analysis.style import new_figure, save_figure
from simnpo.losses import npo_weights, simnpo_weights
from simnpo.runs import write_json

LINESTYLES = ("-", "--", ":", "-.")


@dataclass(frozen=True)
class WeightsPlotConfig:
    """What the weights figure shows.

    lengths: response lengths |y|; betas: inverse temperatures, one line style each (at most 4).
    ref_token_logprob: the reference model's per-token log-likelihood log π_ref(y|x)/|y| (NPO only): a
    memorised response sits close to 0. token_logprob_range: the x-axis, per-token log-likelihood of θ.
    """

    lengths: tuple[int, ...] = (5, 20, 80)
    betas: tuple[float, ...] = (0.5, 2.5)
    ref_token_logprob: float = -1.0
    margin: float = 0.0
    token_logprob_range: tuple[float, float] = (-5.0, 0.0)
    points: int = 400

    def __post_init__(self) -> None:
        if not self.lengths or any(n < 1 for n in self.lengths):
            raise ValueError(f"lengths must be whole numbers >= 1, got {list(self.lengths)}")
        if not self.betas or any(not b > 0 for b in self.betas):
            raise ValueError(f"betas must be numbers > 0, got {list(self.betas)}")
        if len(self.betas) > len(LINESTYLES):
            raise ValueError(f"at most {len(LINESTYLES)} betas fit in one figure, got {len(self.betas)}")
        if self.margin < 0:
            raise ValueError(f"margin must be >= 0, got {self.margin}")
        low, high = self.token_logprob_range
        if not (low < high <= 0):
            raise ValueError(f"the log-likelihood range must satisfy low < high <= 0, got {low}, {high}")
        if not self.token_logprob_range[0] < self.ref_token_logprob <= 0:
            raise ValueError(f"ref_token_logprob must lie in ({low}, 0], got {self.ref_token_logprob}")


def weight_curves(config: WeightsPlotConfig) -> dict:
    """The curves the figure draws, as plain lists (saved beside the figure as JSON)."""
    token_logprob = torch.linspace(*config.token_logprob_range, config.points, dtype=torch.float64)
    curves = []
    for beta in config.betas:
        for n in config.lengths:
            length = torch.full_like(token_logprob, n)
            logps = token_logprob * n
            npo = npo_weights(logps, torch.full_like(logps, config.ref_token_logprob * n), beta)
            sim = simnpo_weights(logps, length, beta, config.margin)
            curves.append({"beta": beta, "length": n, "npo": npo.tolist(), "simnpo": sim.tolist()})
    return {"token_logprob": token_logprob.tolist(), "curves": curves}


def plot_weights(data: dict, config: WeightsPlotConfig):
    """A 2×2 figure: columns NPO and SimNPO; rows w and |y|·w. Colour = length, line style = β."""
    fig, axes = new_figure(ncols=2, nrows=2, width=4.4, height=3.2)
    x = np.asarray(data["token_logprob"])
    colors = dict(zip(config.lengths, ["#4c72b0", "#dd8452", "#55a868", "#8172b3", "#c44e52", "#937860"] * 8))
    styles = dict(zip(config.betas, LINESTYLES))
    for curve in data["curves"]:
        n, beta = curve["length"], curve["beta"]
        for col, method in enumerate(("npo", "simnpo")):
            w = np.asarray(curve[method])
            kw = {"color": colors[n], "linestyle": styles[beta], "linewidth": 1.4}
            axes[0, col].plot(x, w, **kw, label=f"|y| = {n}, β = {beta:g}")
            axes[1, col].plot(x, n * w, **kw)
    axes[0, 0].set_title(f"NPO: w = 2σ(β[log π_θ − log π_ref])\nreference at {config.ref_token_logprob:g} nats/token")
    axes[0, 1].set_title(f"SimNPO: w = (2/|y|)·σ(β log π_θ/|y| + γ), γ = {config.margin:g}")
    for col in range(2):
        axes[0, col].set_ylabel("gradient weight w")
        axes[1, col].set_ylabel("weight per token |y|·w")
        axes[1, col].set_xlabel("log-likelihood per token, log π_θ(y|x)/|y| (nats)")
        for row in range(2):
            axes[row, 0].axvline(config.ref_token_logprob, color="black", linewidth=0.8, linestyle=":")
    axes[0, 1].set_yscale("log")
    axes[1, 1].text(
        0.03, 0.95, "every length lies on one curve per β", transform=axes[1, 1].transAxes, va="top", fontsize=8
    )
    axes[1, 0].text(
        0.03,
        0.95,
        "long responses pushed hardest until\nthey fall below the reference",
        transform=axes[1, 0].transAxes,
        va="top",
        fontsize=8,
    )
    axes[0, 0].legend(fontsize=7, ncol=1, loc="upper left")
    return fig


def write_weights_figure(config: WeightsPlotConfig, folder: Path) -> list[Path]:
    """Compute, save (weights.json) and draw (weights.png, weights.pdf) the gradient-weight curves."""
    data = weight_curves(config)
    paths = [write_json(folder / "weights.json", data)]
    return paths + save_figure(plot_weights(data, config), folder, "weights")
