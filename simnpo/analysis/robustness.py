"""Whether the paper's Markov-chain findings hold across seeds, β and unlearning learning rates: paired statistics.

The SimNPO paper (arXiv 2410.07163, Sec. 4, the mixture-of-Markov-chains experiments) finds that SimNPO forgets at
less damage to the retain chain than NPO: in the difficulty case the memorised (pretrained) forget chains, in the
length case the short forget chains. Here the finding is tested per seed: each seed's NPO and SimNPO runs share their
pretrained and retrained models, so they are compared as a pair at the same level of forgetting, and the paired
differences are summarised over seeds with a bootstrap confidence interval of their mean.

Reads result dicts only (``results.json`` of ``simnpo markov``: one entry of ``points`` per (β, lr) of the sweep).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import bootstrap

from simnpo.analysis.style import new_figure

METHODS = ("npo", "simnpo")  # the paired difference is cost of the first minus cost of the second
LEVELS = {"retrained": 1.0, "2× retrained": 2.0}  # multiples of each seed's retrained forget KL
N_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0  # a fixed generator: the same results always give the same interval
ROBUSTNESS_COLUMNS = [
    "case",
    "chain",
    "β",
    "lr",
    "level",
    "seeds (censored)",
    "NPO − SimNPO",
    "95 % CI",
    "verdict",
]
COLORBAR_LABEL = "NPO − SimNPO retain KL"
FIGURE_TITLE = (
    "Retain KL at which each method reaches the {level} forget KL, NPO − SimNPO (> 0: SimNPO forgets at less "
    "retain damage);\nmean over seeds, 95 % bootstrap interval and verdict per cell"
)


def setting(value: float) -> str:
    """β or a learning rate as written in names and titles (``:g``: 1, 5e-05, 0.0005)."""
    return f"{value:g}"


def judged_chains(case_name: str, case: dict) -> list[str]:
    """The forget chains a finding is about: difficulty, the pretrained (memorised) ones; length, those shorter than
    the longest chain."""
    forget = case["chains"][1:]
    if case_name == "difficulty":
        return [c["name"] for c in forget if c["pretrain"]]
    if case_name == "length":
        longest = max(c["length"] for c in case["chains"])
        return [c["name"] for c in forget if c["length"] < longest]
    return []


def retain_kl_at(forget_kl: list[float], retain_kl: list[float], level: float) -> float | None:
    """The retain KL when the forget KL first reaches ``level``; None if it never does. The trajectories are
    recorded at evaluation points (every K iterations and the last), so the crossing is interpolated linearly
    between the two evaluation points around it."""
    f, r = np.asarray(forget_kl), np.asarray(retain_kl)
    reached = np.nonzero(f >= level)[0]
    if len(reached) == 0:
        return None
    i = reached[0]
    if i == 0:
        return float(r[0])
    t = (level - f[i - 1]) / (f[i] - f[i - 1])
    return float(r[i - 1] + t * (r[i] - r[i - 1]))


def seed_cost(forget_kl: list[float], retain_kl: list[float], level: float) -> tuple[float, bool]:
    """One run's cost of forgetting to ``level`` (``retain_kl_at``, interpolated between evaluation points) and
    whether it got there. A run that never does is charged its last retain KL: a lower bound on its true cost."""
    cost = retain_kl_at(forget_kl, retain_kl, level)
    return (float(retain_kl[-1]), False) if cost is None else (cost, True)


def mean_interval(values: list[float]) -> tuple[float | None, float | None]:
    """The 95 % percentile-bootstrap confidence interval of the mean (None, None with fewer than two values). With
    very few seeds the percentile bootstrap is narrower than the truth; read n beside it."""
    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return None, None
    if np.ptp(v) == 0:
        return float(v[0]), float(v[0])  # every resample has the same mean
    result = bootstrap(
        (v,),
        np.mean,
        n_resamples=N_RESAMPLES,
        method="percentile",
        confidence_level=0.95,
        random_state=np.random.default_rng(BOOTSTRAP_SEED),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def verdict(low: float | None, high: float | None) -> str:
    if low is not None and low > 0:
        return "holds"
    if high is not None and high < 0:
        return "reversed"
    return "inconclusive"


def paired_difference(case: dict, chain: str, factor: float, methods: tuple[str, str] = METHODS) -> dict:
    """Per seed, each method's retain KL when its forget KL of ``chain`` first reaches ``factor`` times THAT seed's
    retrained forget KL, and d = cost(NPO) − cost(SimNPO) (positive: SimNPO forgets at less retain damage, the
    paper's finding). A pair where one method never gets there charges it its last retain KL, which moves d toward
    zero (conservative), and counts as censored; a pair where neither does is left out."""
    runs = [case["methods"][m]["kl"] for m in methods]
    levels = [factor * v for v in case["reference"]["retrained"][chain]["seeds"]]
    out: dict = {"levels": levels, "seeds": [], "differences": [], "costs": {m: [] for m in methods}}
    out.update(censored=0, excluded=0)
    for i, (seed, level) in enumerate(zip(case["seeds"], levels)):
        pair = [seed_cost(r[chain]["seeds"][i], r["retain"]["seeds"][i], level) for r in runs]
        reached = [ok for _, ok in pair]
        if not any(reached):
            out["excluded"] += 1
            continue
        out["censored"] += not all(reached)
        out["seeds"].append(seed)
        out["differences"].append(pair[0][0] - pair[1][0])
        for method, (cost, _) in zip(methods, pair):
            out["costs"][method].append(cost)
    return out


def paired_findings(results: dict, methods: tuple[str, str] = METHODS) -> list[dict]:
    """One dict per point (β, lr), case, judged chain and level (``LEVELS``): the paired differences over seeds
    (``paired_difference``), n, the censored and left-out counts, their mean, 95 % bootstrap interval (``low``,
    ``high``; None when n < 2) and verdict ("holds" if low > 0, "reversed" if high < 0, else "inconclusive").
    Points or cases without both methods are skipped."""
    out = []
    for point in results["points"]:
        for case_name, case in point["cases"].items():
            if not all(m in case["methods"] for m in methods):
                continue
            for chain in judged_chains(case_name, case):
                for level, factor in LEVELS.items():
                    pairs = paired_difference(case, chain, factor, methods)
                    d = pairs["differences"]
                    low, high = mean_interval(d)
                    out.append(
                        {
                            "case": case_name,
                            "chain": chain,
                            "beta": point["beta"],
                            "lr": point["lr"],
                            "level": level,
                            "level_mean": float(np.mean(pairs["levels"])),
                            **pairs,
                            "n": len(d),
                            "mean": float(np.mean(d)) if d else None,
                            "low": low,
                            "high": high,
                            "verdict": verdict(low, high),
                        }
                    )
    return out


def robustness_rows(results: dict, methods: tuple[str, str] = METHODS) -> list[list[str]]:
    """Rows for the terminal table, in the order of ``ROBUSTNESS_COLUMNS``; numbers to 3 decimals."""
    rows = []
    for f in paired_findings(results, methods):
        seeds = f"{f['n']}" if not f["excluded"] else f"{f['n']} of {f['n'] + f['excluded']}"
        seeds += f" ({f['censored']})"
        interval = "–" if f["low"] is None else f"[{f['low']:.3f}, {f['high']:.3f}]"
        mean = "–" if f["mean"] is None else f"{f['mean']:.3f}"
        level = f"{f['level_mean']:.3f} ({f['level']})"
        cells = [f["case"], f["chain"], setting(f["beta"]), setting(f["lr"]), level]
        rows.append(cells + [seeds, mean, interval, f["verdict"]])
    return rows


def several_seeds(results: dict) -> bool:
    return any(len(case["seeds"]) >= 2 for point in results["points"] for case in point["cases"].values())


def plot_robustness(results: dict, level: str = "retrained"):
    """Heat maps of the mean paired difference at ``level`` over β (x) and lr (y), one panel per case and judged
    chain; each cell says the mean, its 95 % interval and the verdict."""
    found = [f for f in paired_findings(results) if f["level"] == level]
    panels = list(dict.fromkeys((f["case"], f["chain"]) for f in found))
    points = results["points"]
    betas = sorted({p["beta"] for p in points})
    lrs = sorted({p["lr"] for p in points})
    means = [abs(f["mean"]) for f in found if f["mean"] is not None]
    limit = max(means) if means and max(means) > 0 else 1.0  # symmetric, so 0 is the colormap's centre
    fig, axes = new_figure(ncols=max(len(panels), 1), width=1.3 * len(betas) + 1.6, height=0.9 * len(lrs) + 1.9)
    image = None
    for ax, (case, chain) in zip(axes[0], panels):
        cells = {(f["beta"], f["lr"]): f for f in found if (f["case"], f["chain"]) == (case, chain)}
        grid = np.full((len(lrs), len(betas)), np.nan)
        for (beta, lr), f in cells.items():
            if f["mean"] is not None:
                grid[lrs.index(lr), betas.index(beta)] = f["mean"]
        # reversed RdBu: SimNPO better (positive) in red and NPO better in blue, the methods' colours elsewhere
        image = ax.imshow(grid, cmap="RdBu_r", vmin=-limit, vmax=limit, origin="lower", aspect="auto")
        for (beta, lr), f in cells.items():
            _annotate(ax, betas.index(beta), lrs.index(lr), f, limit)
        ax.set_xticks(range(len(betas)), [setting(b) for b in betas])
        ax.set_yticks(range(len(lrs)), [setting(lr) for lr in lrs])
        ax.grid(False)
        ax.set_xlabel("β")
        ax.set_ylabel("unlearning learning rate")
        seeds = max(f["n"] + f["excluded"] for f in cells.values())
        ax.set_title(f"{case} case, {chain} ({seeds} seeds)")
    if image is not None:
        fig.colorbar(image, ax=axes[0].tolist(), label=COLORBAR_LABEL)
        fig.suptitle(FIGURE_TITLE.format(level=level), fontsize=9)
    else:
        axes[0, 0].text(0.5, 0.5, "no paired NPO and SimNPO runs", ha="center", va="center")
    return fig


def _annotate(ax, x: int, y: int, f: dict, limit: float) -> None:
    if f["mean"] is None:
        ax.text(x, y, f"neither reaches\n({f['excluded']} seeds)", ha="center", va="center", fontsize=7)
        return
    interval = "no interval" if f["low"] is None else f"[{f['low']:.3f}, {f['high']:.3f}]"
    text = f"{f['mean']:+.3f}\n{interval}\n{f['verdict']}"
    color = "white" if abs(f["mean"]) > 0.6 * limit else "black"  # readable on the saturated cells
    ax.text(x, y, text, ha="center", va="center", fontsize=7, color=color, gid=f"cell {f['beta']} {f['lr']}")
