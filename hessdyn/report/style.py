"""Shared look of the report's figures: one color per group, step axes, bands and individual runs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.colors as mcolors  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.artist import Artist  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogFormatter  # noqa: E402

# Okabe–Ito: distinguishable with the common color-vision deficiencies and in grayscale print order.
OKABE_ITO = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"]

RC: dict[Any, Any] = {  # matplotlib rcParams (its stubs key them by a Literal of every name)
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "svg.hashsalt": "hessdyn-report",  # stable ids: the same data gives the same SVG
    "svg.fonttype": "path",
    "pdf.fonttype": 42,
}


@dataclass(frozen=True)
class FigureOptions:
    """Settings every figure function receives."""

    groups: tuple[str, ...]  # in report order
    colors: dict[str, str]  # group -> color, the same in every figure
    level: float = 0.95  # confidence level of the band over seeds
    ranks: int = 5  # leading eigenvectors drawn
    log_x: bool = False
    batch_curves: bool = True
    density_snapshots: int = 4


def group_colors(groups: Sequence[str]) -> dict[str, str]:
    """One color per group: Okabe–Ito for up to 8 groups, tab20 beyond."""
    if len(groups) <= len(OKABE_ITO):
        palette = OKABE_ITO
    else:
        cmap = matplotlib.colormaps["tab20"]
        palette = [mcolors.to_hex(cmap(i % 20)) for i in range(len(groups))]
    return {g: palette[i] for i, g in enumerate(groups)}


def shade(color: str, i: int, count: int) -> tuple[float, float, float]:
    """The ``i``-th of ``count`` shades of ``color``: ``i = 0`` is the color itself, later ones lighter."""
    rgb = np.array(mcolors.to_rgb(color))
    mix = 0.0 if count <= 1 else 0.7 * i / (count - 1)
    r, g, b = (float(c) for c in rgb + (1.0 - rgb) * mix)
    return r, g, b


def new_figure(
    panels: int, ncols: int | None = None, width: float = 3.6, height: float = 2.9, sharey: bool = False
) -> tuple[Figure, list[Axes]]:
    """A figure (not registered with pyplot) with ``panels`` axes on a grid; draw it inside
    ``matplotlib.rc_context(RC)`` for the report's look."""
    ncols = ncols or min(panels, 3)
    nrows = math.ceil(panels / ncols)
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=sharey).ravel().tolist()
    for ax in axes[panels:]:
        ax.set_visible(False)
    return fig, axes[:panels]


def step_axis(ax: Axes, log_x: bool, label: str = "training step") -> None:
    """Step x axis; ``log_x`` uses symlog (linear below 1) so step 0 stays visible."""
    ax.set_xlabel(label + (" (symlog)" if log_x else ""))
    if log_x:
        ax.set_xscale("symlog", linthresh=1.0)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        lo, hi = ax.get_xlim()
        if ax.has_data() and lo < -0.5:  # steps are >= 0: autoscale margins must not open a negative decade
            ax.set_xlim(-0.5, hi)


class _PlainLogFormatter(LogFormatter):
    """Matplotlib's choice of which log ticks to label, written as plain numbers (0.3, 20, 1e+04)."""

    def _num_to_string(self, x: float, vmin: float, vmax: float) -> str:
        return f"{x:g}"


def set_log(ax: Axes, axis: str = "y") -> None:
    """Log scale with plain-number tick labels (``0.1``, ``20``) instead of powers of ten."""
    (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_formatter(_PlainLogFormatter())
    target.set_minor_formatter(_PlainLogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.4)))


def log_if_positive(ax: Axes, values: np.ndarray | pd.Series, axis: str = "y") -> bool:
    """Log scale when every finite value is positive and they span more than a decade."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0 or (x <= 0).any() or x.max() / x.min() < 10:
        return False
    set_log(ax, axis)
    return True


def draw_series(
    ax: Axes,
    data: pd.DataFrame,
    x: str,
    color,
    label: str | None,
    linestyle: str = "-",
    linewidth: float = 1.6,
    band: bool = True,
    marker: str | None = None,
) -> None:
    """Mean line and band (``band_lo``..``band_hi``: the t-interval cut to the metric's range, see
    :mod:`hessdyn.report.bands`) of aggregate rows (``run`` empty), plus every individual run (``run`` set:
    diverged/failed) as a thin dashed line ending in ×."""
    agg = data[data["run"].fillna("") == ""].sort_values(x)
    agg = agg[np.isfinite(agg["mean"].astype(float))]
    if not agg.empty:
        ax.plot(
            agg[x],
            agg["mean"],
            color=color,
            linestyle=linestyle,
            linewidth=linewidth,
            label=label,
            marker=marker,
            markersize=3,
        )
        if band and (agg["band_lo"].notna() & agg["band_hi"].notna()).any():
            ax.fill_between(
                agg[x].astype(float),
                agg["band_lo"].astype(float),
                agg["band_hi"].astype(float),
                color=color,
                alpha=0.2,
                linewidth=0,
            )
    for _, run in data[data["run"].fillna("") != ""].groupby("run", sort=True):
        run = run.sort_values(x)
        run = run[np.isfinite(run["mean"].astype(float))]
        if run.empty:
            continue
        ax.plot(run[x], run["mean"], color=color, linestyle="--", linewidth=0.8, alpha=0.8)
        ax.plot(
            run[x].iloc[-1:], run["mean"].iloc[-1:], color=color, marker="x", markersize=6, linestyle="none"
        )


def note_individual(ax: Axes, data: pd.DataFrame) -> None:
    """Add the legend entry explaining dashed lines when some run is drawn individually."""
    if (data["run"].fillna("") != "").any():
        ax.plot([], [], color="0.4", linestyle="--", marker="x", linewidth=0.8, label="diverged/failed run")


def legend(ax: Axes, **kwargs) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(frameon=False, **kwargs)


def legend_below(fig: Figure, axes: Axes | Sequence[Axes], max_cols: int = 4) -> None:
    """One legend under the panels, where it cannot cover data: the labelled artists of ``axes`` (first
    label wins)."""
    entries: dict[str, Artist] = {}
    for ax in [axes] if isinstance(axes, Axes) else axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            entries.setdefault(label, handle)
    if entries:
        fig.legend(
            list(entries.values()),
            list(entries),
            loc="outside lower center",
            ncols=min(max_cols, len(entries)),
            frameon=False,
        )
