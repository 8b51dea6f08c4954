"""One look for every figure: a colour per method, the same in every plot, and atomic PNG + PDF output."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display is needed or wanted
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from simnpo.runs import atomic_path  # noqa: E402

# NPO blue and SimNPO red, as in the paper's figures; the rest from the tab10 palette.
METHOD_COLORS = {
    "npo": "#1f77b4",
    "simnpo": "#d62728",
    "ga": "#7f7f7f",
    "idkpo": "#9467bd",
    "target": "#2ca02c",
    "retain": "#ff7f0e",
}
FORMATS = ("png", "pdf")


def method_color(method: str) -> str:
    """The colour of a method; variants (npo_kl, simnpo_nll, graddiff…) take their family's colour."""
    family = method.split("_")[0]
    family = {"graddiff": "ga", "retrain": "retain", "original": "target"}.get(family, family)
    return METHOD_COLORS.get(family, "#17becf")


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
