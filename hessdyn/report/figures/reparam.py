"""Sharpness measures under the Dinh et al. α-rescaling."""

from __future__ import annotations

from hessdyn.report import aggregate as agg
from hessdyn.report.bands import on_log_axis
from hessdyn.report.figures.base import FigureResult, band_text, present
from hessdyn.report.style import (
    FigureOptions,
    draw_series,
    legend_below,
    new_figure,
    set_log,
)
from hessdyn.report.tables import SweepTables


def reparam_figure(tables: SweepTables, o: FigureOptions) -> FigureResult | None:
    data = present(agg.reparam_data(tables, o.level))
    if data.empty:
        return None
    names = {
        "lambda_max": "λmax",
        "trace": "tr H",
        "eps_sharpness": "ε-sharpness",
        "theta_h_theta": "θᵀHθ (scale-invariant)",
        "scaled_lambda_max": "λmax(diag|θ| H diag|θ|) (scale-invariant)",
    }
    metrics = [m for m in agg.REPARAM_METRICS if m in set(data["metric"])]
    fig, axes = new_figure(len(metrics))
    logs = []
    for ax, metric in zip(axes, metrics, strict=True):
        rows = data[data["metric"] == metric]
        set_log(ax, "x")
        if (rows["mean"] > 0).all():
            set_log(ax, "y")
            rows = on_log_axis(rows)
            logs.append(metric)
        for g in o.groups:
            draw_series(ax, rows[rows["group"] == g], "alpha", o.colors[g], g, marker="o")
        ax.set_title(names[metric])
        ax.set_xlabel("rescaling α (log)")
    axes[0].set_ylabel("value at the rescaled weights")
    legend_below(fig, axes[0])
    data = on_log_axis(data, data["metric"].isin(logs))
    caption = (
        "Dinh et al. reparametrization: each layer pair rescaled by α and 1/α (the network function is unchanged), "
        "sharpness measures at each run's last analyzed step against α, log–log (reparam.csv). λmax, tr H and "
        "ε-sharpness change with α although the function does not; the scale-invariant measures should stay flat. "
        + band_text(o, bool(logs))
    )
    return FigureResult("reparam", "Sharpness under reparametrization", caption, fig, data)
