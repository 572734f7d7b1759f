"""Gradient noise against curvature (the noise metric group): overlap, γ and tr(C)/tr(H) over training, split
by random-label fraction (columns) and batch size (lines), one row per report group; and the generalization
gap against the scale-invariant Σθ_i²H_ii and against λmax across the sweep."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from hessdyn.report import aggregate_noise as agg
from hessdyn.report.bands import on_log_axis
from hessdyn.report.figures.base import FigureResult, band_text, present
from hessdyn.report.style import FigureOptions, draw_series, legend_below, set_log, shade, step_axis
from hessdyn.report.tables import SweepTables


def _grid(o: FigureOptions, data: pd.DataFrame) -> tuple[Figure, dict[tuple[str, float], Axes], list[float]]:
    """Rows: the groups present; columns: the random-label fractions present."""
    groups = [g for g in o.groups if g in set(data["group"])]
    fractions = sorted(set(data["fraction"].astype(float)))
    fig = Figure(figsize=(3.3 * len(fractions), 2.5 * len(groups) + 0.6), layout="constrained")
    axes = fig.subplots(len(groups), len(fractions), squeeze=False, sharex=True, sharey=True)
    grid = {}
    for i, g in enumerate(groups):
        for j, f in enumerate(fractions):
            ax = axes[i][j]
            ax.set_title(f"{g}, random labels {f:g}", color=o.colors[g], fontsize=9)
            grid[(g, f)] = ax
    return fig, grid, fractions


def _series_figure(
    tables: SweepTables, o: FigureOptions, value: str, ylabel: str, log_y: bool = False
) -> tuple[Figure, pd.DataFrame, list[Axes]] | None:
    data = present(agg.noise_series(tables, value, o.level))
    if data.empty:
        return None
    if log_y:
        data = on_log_axis(data)
    fig, grid, _ = _grid(o, data)
    batches = sorted(set(data["batch"]), key=agg.batch_order)
    for (g, f), ax in grid.items():
        rows = data[(data["group"] == g) & (data["fraction"].astype(float) == f)]
        for i, b in enumerate(batches):
            draw_series(ax, rows[rows["batch"] == b], "step", shade(o.colors[g], i, len(batches)), None)
        if log_y:
            set_log(ax)
        step_axis(ax, o.log_x)
    first = next(iter(grid.values()))
    first.set_ylabel(ylabel)
    for i, b in enumerate(batches):  # the legend in gray: each row has its group's shades
        first.plot([], [], color=shade("#404040", i, len(batches)), label=f"batch {b}")
    return fig, data, list(grid.values())


def noise_overlap_figure(tables: SweepTables, o: FigureOptions) -> FigureResult | None:
    drawn = _series_figure(tables, o, "overlap_covariance_hessian", "overlap of top-k spaces of C and H")
    if drawn is None:
        return None
    fig, data, axes = drawn
    baseline = present(agg.noise_series(tables, "random_overlap", o.level))
    if not baseline.empty:
        level = float(baseline["mean"].max())
        for ax in axes:
            ax.axhline(level, color="0.4", linestyle="--", linewidth=0.9)
        axes[0].plot([], [], color="0.4", linestyle="--", label="random k/P")
    legend_below(fig, axes[0], max_cols=6)
    caption = (
        "Overlap ||P_C P_H||²_F / k of the top-k eigenspaces of the per-example gradient covariance C and of the "
        "Hessian H of the training loss over the Hessian set (noise.csv), against training step; rows: report "
        "groups, columns: share of random training labels, lines: training batch size (darker = smaller). "
        "Dashed: k/P, the overlap of random k-dimensional spaces (its largest value over the runs drawn). "
        + band_text(o)
    )
    return FigureResult(
        "noise_overlap", "Top-subspace overlap of gradient noise and curvature", caption, fig, data
    )


def noise_gamma_figure(tables: SweepTables, o: FigureOptions) -> FigureResult | None:
    drawn = _series_figure(tables, o, "gamma", "γ in C_ii ∝ H_ii^γ")
    if drawn is None:
        return None
    fig, data, axes = drawn
    for ax in axes:
        ax.axhspan(1.0, 2.0, color="0.9", linewidth=0, zorder=0)
    axes[0].add_patch(Rectangle((0, 0), 0, 0, color="0.9", label="1 ≤ γ ≤ 2 (Zhang, Yang & Tu)"))
    legend_below(fig, axes[0], max_cols=6)
    caption = (
        "Exponent γ of the diagonal power law C_ii ∝ H_ii^γ, least squares on (ln H_ii, ln C_ii) over all "
        "parameters with H_ii > 0 and C_ii > 0 (noise_gamma.csv, param = all; per-tensor fits are in the "
        "table), against training step. diag(C) is exact; diag(H) exact or a Bekas estimate as noise.csv's "
        "diagonal column says (entries within 2 standard errors of 0 are left out). Shaded: the range "
        "1 ≤ γ ≤ 2 that Zhang, Yang & Tu (arXiv 2602.05600) derive and report per layer. " + band_text(o)
    )
    return FigureResult("noise_gamma", "Diagonal power law of noise against curvature", caption, fig, data)


def noise_trace_ratio_figure(tables: SweepTables, o: FigureOptions) -> FigureResult | None:
    drawn = _series_figure(tables, o, "covariance_over_hessian", "tr(C) / tr(H)", log_y=True)
    if drawn is None:
        return None
    fig, data, axes = drawn
    legend_below(fig, axes[0], max_cols=6)
    caption = (
        "tr(C)/tr(H): the variance of one example's gradient per unit of Hessian trace (units of the loss; "
        "noise.csv's covariance_over_hessian), against training step, log scale. A minibatch of B examples drawn "
        "without replacement from N has C·(N − B)/(B(N − 1)) (noise.csv's minibatch_noise_trace); the ratio drawn "
        "is the per-example one, the same for every batch size at equal weights. " + band_text(o, True)
    )
    return FigureResult("noise_trace_ratio", "Gradient noise per unit of curvature", caption, fig, data)


def noise_generalization_figure(tables: SweepTables, o: FigureOptions) -> FigureResult | None:
    data = agg.generalization_data(tables)
    if data.empty:
        return None
    corr = agg.rank_correlations(data)
    measures = [m for m in agg.MEASURES if m in data.columns and np.isfinite(data[m].astype(float)).any()]
    names = {"theta2_h_diagonal": "Σ θ_i² H_ii (scale-invariant)", "lambda_max": "λmax"}
    gaps = {"accuracy_gap": "train − test accuracy", "loss_gap": "test − train loss"}
    fig = Figure(figsize=(3.8 * len(measures), 3.0 * len(gaps) + 0.8), layout="constrained")
    axes = fig.subplots(len(gaps), len(measures), squeeze=False)
    groups = [g for g in o.groups if g in set(data["group"])]
    for i, (gap, gap_name) in enumerate(gaps.items()):
        for j, m in enumerate(measures):
            ax = axes[i][j]
            for g in groups:
                rows = data[data["group"] == g]
                rho = corr[(corr.group == g) & (corr.x == m) & (corr.y == gap)]
                text = (
                    f"{g}: ρ = {float(rho.spearman_rho.iloc[0]):.2f} (n = {int(rho.n.iloc[0])})"
                    if len(rho)
                    else g
                )
                ax.scatter(rows[m], rows[gap], s=12, color=o.colors[g], alpha=0.8, label=text)
            if (data[m].astype(float) > 0).all():
                set_log(ax, "x")
            ax.set_xlabel(f"{names[m]} at the last checkpoint")
            ax.set_ylabel(gap_name)
            ax.legend(frameon=False, fontsize=7)
    out = pd.concat([data.assign(kind="run"), corr.assign(kind="spearman")], ignore_index=True, sort=False)
    caption = (
        "Generalization gap at the end of training (final evaluation: train − test accuracy, test − train loss; "
        "training labels as trained on, random ones included, test labels true) against the scale-invariant "
        "Σ θ_i² H_ii and against λmax at each run's last analyzed checkpoint (noise.csv, summary.csv); one point "
        "per completed run over every batch size, random-label fraction and seed; ρ: Spearman's rank "
        "correlation within each group (the CSV has it with its p-value as rows with kind = spearman)."
    )
    return FigureResult(
        "noise_generalization", "Generalization gap against curvature measures", caption, fig, out
    )
