"""What every figure function returns, and small helpers they share."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from scipy.special import stdtrit

from hessdyn.report.bands import LOG_FLOOR
from hessdyn.report.style import FigureOptions, new_figure
from hessdyn.report.tables import SweepTables


@dataclass
class FigureResult:
    name: str  # file stem: <name>.png, <name>.csv
    title: str
    caption: str  # what is plotted and how it is normalized (plain text)
    figure: Figure
    data: pd.DataFrame  # the aggregated numbers drawn (the CSV beside the figure)


@dataclass(frozen=True)
class FigureSpec:
    name: str
    title: str
    draw: Callable[[SweepTables, FigureOptions], FigureResult | None]
    needs: str  # what the figure is drawn from; shown when no run has it


def band_text(o: FigureOptions, log_axis: bool = False, what: str = "bands") -> str:
    """Caption sentences on lines and bands; ``log_axis``: some band is drawn on a log axis."""
    t2 = float(stdtrit(1, 0.5 + o.level / 2.0))
    cut = "cut to the metric's valid range" + (
        f" and, on log axes, to no lower than {LOG_FLOOR:g}× the mean" if log_axis else ""
    )
    return (
        f"Lines: mean over seeds; {what}: {o.level:.0%} t-interval of the mean over seeds (t = {t2:.3g} with two "
        f"seeds; none with one), {cut} (the CSV has the interval as lo, hi and the drawn band as band_lo, "
        "band_hi). Dashed lines ending in × are diverged or failed runs, drawn individually and left out of the means."
    )


def ranks_text(ranks: Sequence[float]) -> str:
    """``1–5`` for the ranks present (fewer than report.top_ranks when the analysis computed fewer)."""
    ranks = sorted(int(r) for r in ranks)
    return f"{ranks[0]}–{ranks[-1]}" if len(ranks) > 1 else f"{ranks[0]}" if ranks else "–"


def present(data: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    if data.empty:
        return data
    rows = data if metric is None else data[data["metric"] == metric]
    return rows[np.isfinite(rows["mean"].astype(float))]


def present_groups(o: FigureOptions, data: pd.DataFrame) -> list[str]:
    present = set(data["group"])
    return [g for g in o.groups if g in present]


def per_group_axes(
    o: FigureOptions, groups: list[str], sharey: bool = True
) -> tuple[Figure, dict[str, Axes]]:
    fig, axes = new_figure(len(groups), sharey=sharey)
    for g, ax in zip(groups, axes, strict=True):
        ax.set_title(g, color=o.colors[g])
    return fig, dict(zip(groups, axes, strict=True))
