"""One look for every figure: a colour per method, the same in every plot, and atomic PNG + PDF output."""

from __future__ import annotations

import zlib
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display is needed or wanted
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from simnpo.losses import METHODS  # noqa: E402
from simnpo.runs import atomic_path  # noqa: E402

# NPO blue and SimNPO red, as in the paper's figures; variants in darker/lighter shades of their family.
METHOD_COLORS = {
    "npo": "#1f77b4",
    "npo_nll": "#0b3d91",
    "npo_kl": "#6baed6",
    "simnpo": "#d62728",
    "simnpo_nll": "#8b0000",
    "simnpo_kl": "#f28e8e",
    "ga": "#7f7f7f",
    "graddiff": "#404040",
    "idkpo": "#9467bd",
    "rmu": "#e6a800",
    "undial": "#17becf",
    "wga": "#8c564b",
    "satimp": "#e377c2",
    "ceu": "#bcbd22",
    "pdu": "#393b79",
    "target": "#2ca02c",
    "retain": "#ff7f0e",
}
# A method with no colour of its own or of its family (one a user added) takes one of these, chosen by its name
FALLBACK_COLORS = ("#637939", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354", "#756bb1", "#636363")
FORMATS = ("png", "pdf")


def method_color(method: str) -> str:
    """The colour of a method, the same in every figure; variants take their family's colour (``npo_kl`` a shade
    of NPO's when it has none of its own), a method we do not know one of FALLBACK_COLORS chosen by its name."""
    method = {"retrain": "retain", "retrained": "retain", "original": "target", "pretrained": "target"}.get(
        method, method
    )
    if method in METHOD_COLORS:
        return METHOD_COLORS[method]
    family = METHODS[method][0].name if method in METHODS else method
    if family in METHOD_COLORS:
        return METHOD_COLORS[family]
    # zlib.crc32, not hash(): the same colour in every process (hash() of a str is salted per process)
    return FALLBACK_COLORS[zlib.crc32(method.encode()) % len(FALLBACK_COLORS)]


def method_label(method: str) -> str:
    """How a method is named in legends: NPO, SimNPO, SimNPO+NLL, GradDiff…"""
    names = {
        "npo": "NPO",
        "simnpo": "SimNPO",
        "ga": "GA",
        "graddiff": "GradDiff",
        "idkpo": "IdkPO",
        "rmu": "RMU",
        "undial": "UNDIAL",
        "wga": "WGA",
        "satimp": "SatImp",
        "ceu": "CE-U",
        "pdu": "PDU",
        "nll": "NLL",
        "kl": "KL",
        "target": "target",
        "retain": "retain",
    }
    return "+".join(names.get(part, part) for part in method.split("_"))


def new_figure(ncols: int = 1, nrows: int = 1, width: float = 4.2, height: float = 3.4) -> tuple[Figure, object]:
    plt.rcParams.update(
        {
            "font.size": 9,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "legend.frameon": False,
        }
    )
    return plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, layout="constrained")


def save_figure(fig: Figure, folder: Path | str, stem: str) -> list[Path]:
    """Write ``folder/stem.png`` (200 dpi) and ``folder/stem.pdf`` atomically; close the figure."""
    paths = []
    for fmt in FORMATS:
        path = Path(folder) / f"{stem}.{fmt}"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=200)
        paths.append(path)
    plt.close(fig)
    return paths


def mark_utility_floor(ax, values: list[float], label: str) -> None:
    """Dotted vertical lines at the least utility the best-point rule of ``simnpo llm`` keeps, one per starting or
    reference model, labelled once."""
    for i, value in enumerate(dict.fromkeys(values)):
        style = {"color": "grey", "linestyle": ":", "linewidth": 1, "zorder": 1, "gid": "utility floor"}
        ax.axvline(value, label=None if i else label, **style)


def draw_paths(ax, start: list[dict], history: list[dict], x: str, y, floor: float | None = None) -> None:
    """Each method's path through its evaluations (``history``: records with ``run``, ``model``, ``epoch``), from
    its run's starting model (the record of ``start`` with the same ``run``), as a thin line with small markers in
    the method's colour; ``y`` a key or a function of a record (None: the point is skipped); values below ``floor``
    drawn at it (log axes)."""
    value = y if callable(y) else (lambda record: record.get(y))
    origins = {r["run"]: r for r in start}
    for run, name in dict.fromkeys((h["run"], h["model"]) for h in history):
        points = sorted((h for h in history if (h["run"], h["model"]) == (run, name)), key=lambda h: h["epoch"])
        points = [origins[run], *points] if run in origins else points
        xy = [(p[x], value(p)) for p in points if p.get(x) is not None and value(p) is not None]
        if len(xy) > 1:
            xs, ys = zip(*xy)
            ys = [max(v, floor) for v in ys] if floor is not None else ys
            style = {"linewidth": 1, "markersize": 4, "alpha": 0.7, "zorder": 2, "gid": f"path {run} {name}"}
            ax.plot(xs, ys, ".-", color=method_color(name), **style)
