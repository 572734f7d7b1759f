"""Curvature against step: top eigenvalues, stability (at checkpoints and from the training-time probe),
Wolkowicz–Styan bound, trace, spectral density."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from matplotlib.figure import Figure

from hessdyn.report import aggregate as agg
from hessdyn.report.bands import on_log_axis
from hessdyn.report.figures.base import (
    FigureResult,
    band_text,
    per_group_axes,
    present,
    present_groups,
    ranks_text,
)
from hessdyn.report.style import (
    FigureOptions,
    draw_series,
    legend,
    legend_below,
    log_if_positive,
    new_figure,
    note_individual,
    set_log,
    shade,
    step_axis,
)
from hessdyn.report.tables import SweepTables


def _mean_error_bars(ax, values: pd.DataFrame, se: pd.DataFrame, color) -> None:  # noqa: ANN001
    """± one standard error (rows of `se`) on the group-mean points of `values` (the rows without a run)."""
    both = values[values["run"].fillna("") == ""].merge(se[["step", "mean"]], on="step", suffixes=("", "_se"))
    if not both.empty:
        ax.errorbar(
            both["step"],
            both["mean"],
            yerr=both["mean_se"],
            color=color,
            linestyle="none",
            capsize=2,
            linewidth=0.8,
        )


# (value, its threshold, line style) of the stability figure; labels for its legend
STABILITY_SERIES = (
    ("lambda_max", "stability_threshold", "-"),
    ("lambda_max_trained", "stability_threshold", "-."),
    ("precond_lambda_max", "precond_threshold", ":"),
)
STABILITY_LABELS = {
    "lambda_max": "λmax (SGD, momentum)",
    "lambda_max_trained": "λmax, batch statistics (batch-norm nets)",
    "precond_lambda_max": "preconditioned λmax (Adam)",
}


def eigenvalues_figure(tables: SweepTables, o: FigureOptions) -> FigureResult | None:
    data = agg.eigenvalue_data(tables, o.ranks, o.level)
    eig = present(data, "eigenvalue")
    if eig.empty:
        return None
    groups = present_groups(o, eig)
    fig, axes = per_group_axes(o, groups)
    first = next(iter(axes.values()))
    log = log_if_positive(first, eig["mean"])  # shared y: every panel
    if log:
        data = on_log_axis(data, data["metric"] == "eigenvalue")
    ranks = sorted(eig["rank"].unique())
    for g, ax in axes.items():
        rows = data[data["group"] == g]
        for i, r in enumerate(ranks):
            sub = rows[(rows["metric"] == "eigenvalue") & (rows["rank"] == r)]
            draw_series(
                ax,
                sub,
                "step",
                shade(o.colors[g], i, len(ranks)),
                f"λ{int(r)}" if i in (0, len(ranks) - 1) else None,
                linewidth=1.6 if i == 0 else 0.8,
                band=i == 0,
            )
        thr = present(rows, "stability_threshold")
        if not thr.empty:
            ax.plot(
                thr["step"],
                thr["mean"],
                color="0.25",
                linestyle="--",
                linewidth=1.0,
                label="stability threshold",
            )
        step_axis(ax, o.log_x)
        note_individual(ax, rows)
        legend(ax, fontsize=7)
    first.set_ylabel("eigenvalue of the loss Hessian")
    caption = (
        f"Top eigenvalues λ{ranks_text(ranks).replace('–', '…λ')} of the Hessian of the training loss (mean "
        "cross-entropy over the Hessian set; spectrum.csv, which=top, converged eigenpairs) against training step, "
        "one panel per group, darker = larger. The band is drawn around λ1 only (thin lines: the other ranks; "
        "every rank's band is in the CSV). The spectrum is in the analysis' Hessian mode (analysis.batchnorm; "
        "eval by default: batch norm on its running statistics, the trained function's geometry). Dashed black "
        "line: the stability threshold of summary.csv where it applies, 2/η for SGD and (2+2β)/η with momentum, "
        "drawn only for nets without batch norm, whose λ1 here is the one SGD steps on (for batch-norm nets and "
        "for Adam see the stability figure). " + band_text(o, log, "band")
    )
    return FigureResult("eigenvalues", "Top Hessian eigenvalues", caption, fig, data)


def stability_figure(tables: SweepTables, o: FigureOptions) -> FigureResult | None:
    data = agg.stability_data(tables, o.level)
    panels = _stability_panels(data, o)
    if panels is None:
        return None
    bn_groups = agg.batch_statistics_groups(tables)
    which_hessian = "Every λmax here is of the loss as trained" + (
        ": for the batch-norm nets (" + ", ".join(bn_groups) + ") the Hessian with batch norm normalizing "
        "with the statistics of each batch of the training batch size (lambda_max_trained, dash-dot; their "
        "preconditioned λmax too), not the analysis' Hessian mode of the eigenvalue figure; elsewhere the "
        "analysis' Hessian (lambda_max). "
        if bn_groups
        else " (no group has batch norm, so it is the analysis' Hessian, lambda_max). "
    )
    caption = (
        "Sharpness against the optimizer's stability threshold at the analyzed checkpoints (summary.csv). "
        + panels.caption(o, which_hessian)
    )
    return FigureResult(
        "stability", "Sharpness against the stability threshold", caption, panels.figure, data
    )


def sharpness_figure(tables: SweepTables, o: FigureOptions) -> FigureResult | None:
    data = agg.sharpness_data(tables, o.level)
    panels = _stability_panels(data, o)
    if panels is None:
        return None
    caption = (
        "Sharpness at every probed step, from the training-time probe (metrics/sharpness.csv, trainer.sharpness; "
        "rank 1, converged pairs): the Hessian of the loss as trained (batch statistics, no dropout) on the run's "
        "fixed probe set (run.json records it), which need not be the analysis' Hessian set or mode. "
        + panels.caption(o, "")
    )
    return FigureResult("sharpness", "Sharpness during training (probe)", caption, panels.figure, data)


@dataclass(frozen=True)
class _StabilityPanels:
    figure: Figure
    log: bool  # the eigenvalue panel is on a log axis
    log_ratio: bool  # the ratio panel is

    def caption(self, o: FigureOptions, which_hessian: str) -> str:
        """The panels' caption, with ``which_hessian`` (what λmax is of) after the edge-of-stability line."""
        return (
            "Left: λmax (solid) with 2/η for SGD and (2+2β)/η with momentum (dashed), and for Adam the largest "
            "eigenvalue of the preconditioned Hessian (dotted) with (2+2β1)/((1−β1)η) (dashed). Right: their ratio, "
            "λmax / (2/η) = ηλmax/2 for SGD"
            + (", on a log axis" if self.log_ratio else "")
            + "; 1 is the edge of stability of the quadratic model. "
            + which_hessian
            + "Adam's ratio is large over its first steps, where the second-moment estimate v̂ is still tiny and "
            "the preconditioner huge. Groups whose optimizer has neither threshold are not drawn. "
            + band_text(o, self.log or self.log_ratio)
        )


def _stability_panels(data: pd.DataFrame, o: FigureOptions) -> _StabilityPanels | None:
    """λmax (and the preconditioned λmax) with their thresholds, and their ratio, per group (the metrics of
    ``aggregate.stability_data``); None when no group has a threshold."""
    ratio = present(data, "stability_ratio")
    if ratio.empty:
        return None
    fig, (ax, ax_ratio) = new_figure(2, width=4.2)
    values = present(data)
    log = log_if_positive(ax, values["mean"][values["metric"] != "stability_ratio"])
    # Ratios of positive numbers; Adam's first steps (v̂ tiny) sit orders of magnitude above the rest.
    log_ratio = bool((ratio["mean"] > 0).all())
    if log_ratio:
        set_log(ax_ratio)
    is_ratio = data["metric"] == "stability_ratio"
    if log:
        data = on_log_axis(data, ~is_ratio)
    if log_ratio:
        data = on_log_axis(data, is_ratio)
    for g in o.groups:
        rows = data[data["group"] == g]
        if not present(rows, "stability_ratio").empty:
            ax.plot([], [], color=o.colors[g], linewidth=3, label=g)  # legend: the group's color only
        for value, threshold, style in STABILITY_SERIES:
            if present(rows, value).empty:
                continue
            draw_series(ax, rows[rows["metric"] == value], "step", o.colors[g], None, linestyle=style)
            thr = present(rows, threshold)
            thr = thr[thr["run"].fillna("") == ""]
            ax.plot(thr["step"], thr["mean"], color=o.colors[g], linestyle="--", linewidth=0.9)
        draw_series(ax_ratio, rows[rows["metric"] == "stability_ratio"], "step", o.colors[g], None)
    shown = set(present(data)["metric"])
    for value, _, style in STABILITY_SERIES:
        if value in shown:
            ax.plot([], [], color="0.4", linestyle=style, label=STABILITY_LABELS[value])
    ax.plot([], [], color="0.4", linestyle="--", label="its stability threshold")
    ax.set_ylabel("top eigenvalue")
    ax_ratio.axhline(1.0, color="0.25", linestyle="--", linewidth=1.0, label="ratio 1: edge of stability")
    ax_ratio.set_ylabel("λmax / stability threshold")
    for a in (ax, ax_ratio):
        step_axis(a, o.log_x)
    note_individual(ax_ratio, data)
    legend_below(fig, [ax, ax_ratio])
    return _StabilityPanels(fig, log, log_ratio)


def ws_bound_figure(tables: SweepTables, o: FigureOptions) -> FigureResult | None:
    data = agg.ws_data(tables, o.level)
    if present(data, "ws_bound").empty and present(data, "ws_bound_exact").empty:
        return None
    fig, (ax, ax_ratio) = new_figure(2)
    left = data["metric"].isin(["lambda_max", "ws_bound", "ws_bound_exact"])
    log = log_if_positive(ax, present(data[left])["mean"])
    if log:
        data = on_log_axis(data, left)
    exact_any = not present(data, "ws_bound_exact").empty
    for g in o.groups:
        rows = data[data["group"] == g]
        draw_series(ax, rows[rows["metric"] == "lambda_max"], "step", o.colors[g], g)
        ws = rows[rows["metric"] == "ws_bound"]
        draw_series(ax, ws, "step", o.colors[g], None, linestyle="--")
        _mean_error_bars(ax, ws, present(rows, "ws_bound_se"), o.colors[g])
        draw_series(ax, rows[rows["metric"] == "ws_bound_exact"], "step", o.colors[g], None, linestyle=":")
        draw_series(ax_ratio, rows[rows["metric"] == "lambda_max_over_ws"], "step", o.colors[g], g)
        exact_ratio = rows[rows["metric"] == "lambda_max_over_ws_exact"]
        draw_series(ax_ratio, exact_ratio, "step", o.colors[g], None, linestyle=":", band=False)
    ax.plot([], [], color="0.4", linestyle="--", label="WS bound (Hutch++ traces)")
    if exact_any:
        ax.plot([], [], color="0.4", linestyle=":", label="WS bound (exact traces)")
    ax.set_ylabel("eigenvalue of the loss Hessian")
    ax_ratio.axhline(1.0, color="0.25", linewidth=0.8)
    ax_ratio.set_ylabel("λmax / WS bound")
    for a in (ax, ax_ratio):
        step_axis(a, o.log_x)
    note_individual(ax, data)
    legend_below(fig, ax)
    caption = (
        "Left: λmax (solid) beside the Wolkowicz–Styan upper bound μ + s·sqrt(P−1), with μ = tr(H)/P and "
        "s² = tr(H²)/P − μ² over the P parameters, from the Hutch++ estimates of tr(H) and tr(H²) "
        "(dashed; error bars: the bound's estimator standard error ws_bound_se, mean over seeds, where the "
        "analysis recorded it)"
        + (
            " and from the exact traces of the three_layer closed form (dotted; summary.csv ws_bound_exact)"
            if exact_any
            else ""
        )
        + ". Right: λmax / bound (≤ 1 up to estimation error; near 1 when one outlier dominates the spectrum)"
        + ("; dotted: with the exact bound" if exact_any else "")
        + ". The Hessian is that of the data loss (mean cross-entropy over the Hessian set) for every run, "
        "also for runs trained with a regularizer. " + band_text(o, log)
    )
    return FigureResult("ws_bound", "λmax and the Wolkowicz–Styan bound", caption, fig, data)


def spectral_range_figure(tables: SweepTables, o: FigureOptions) -> FigureResult | None:
    data = agg.spectral_range_data(tables, o.level)
    if present(data, "spectral_range").empty:
        return None
    fig, (ax, ax_min) = new_figure(2)
    is_range = data["metric"] == "spectral_range"
    log = log_if_positive(ax, present(data[is_range])["mean"])
    if log:
        data = on_log_axis(data, is_range)
    for g in o.groups:
        rows = data[data["group"] == g]
        draw_series(ax, rows[rows["metric"] == "spectral_range"], "step", o.colors[g], g)
        draw_series(ax_min, rows[rows["metric"] == "lambda_min"], "step", o.colors[g], g)
    ax.set_ylabel("λmax − λmin")
    ax_min.axhline(0.0, color="0.25", linewidth=0.8)
    ax_min.set_ylabel("λmin (smallest eigenvalue)")
    for a in (ax, ax_min):
        step_axis(a, o.log_x)
    note_individual(ax, data)
    legend_below(fig, ax)
    caption = (
        "Left: the range of the Hessian spectrum λmax − λmin (summary.csv lambda_max and lambda_min, per run, "
        "then the mean over seeds), the quantity HSR regularization aims to narrow. Right: λmin, below 0 "
        "where the loss has negative curvature (a saddle direction). λmin comes from the bottom metric group "
        "(or the dense path); runs analyzed without it are not drawn. Data-loss Hessian for every run. "
        + band_text(o, log)
    )
    return FigureResult("spectral_range", "Spectral range λmax − λmin", caption, fig, data)


def trace_figure(tables: SweepTables, o: FigureOptions) -> FigureResult | None:
    data = agg.trace_data(tables, o.level)
    trace = present(data, "trace")
    if trace.empty:
        return None
    fig, (ax,) = new_figure(1, width=5.0, height=3.2)
    log = log_if_positive(ax, trace["mean"])
    if log:
        data = on_log_axis(data, data["metric"] == "trace")
    for g in o.groups:
        rows = data[data["group"] == g]
        draw_series(ax, rows[rows["metric"] == "trace"], "step", o.colors[g], g)
        _mean_error_bars(ax, present(rows, "trace"), present(rows, "trace_se"), o.colors[g])
    ax.set_ylabel("tr H (sum of all eigenvalues)")
    step_axis(ax, o.log_x)
    note_individual(ax, data)
    legend(ax)
    caption = (
        "Trace of the loss Hessian (Hutch++ estimate, summary.csv trace) against training step. Error bars: the "
        "estimator's standard error trace_se (mean over seeds; the noise of one run's estimate, not the spread "
        "over seeds), where the analysis recorded it. " + band_text(o, log)
    )
    return FigureResult("trace", "Hessian trace", caption, fig, data)


def density_figure(tables: SweepTables, o: FigureOptions) -> FigureResult | None:
    data = agg.density_data(tables, o.density_snapshots, o.level)
    data = present(data)
    if data.empty:
        return None
    groups = present_groups(o, data)
    fig, axes = per_group_axes(o, groups, sharey=False)
    for g, ax in axes.items():
        rows = data[data["group"] == g]
        steps = sorted(rows["step"].unique())
        for i, step in enumerate(steps):
            draw_series(
                ax,
                rows[rows["step"] == step],
                "eigenvalue",
                shade(o.colors[g], len(steps) - 1 - i, len(steps)),
                f"step {step:g}",
                linewidth=1.0,
                band=False,
            )
        positive = rows["mean"][rows["mean"] > 0]
        if not positive.empty:
            set_log(ax, "y")
            ax.set_ylim(max(positive.min(), positive.max() * 1e-5), positive.max() * 2)
        ax.set_xlabel("eigenvalue")
        legend(ax, fontsize=7)
    next(iter(axes.values())).set_ylabel("spectral density (per unit eigenvalue)")
    caption = (
        f"Spectral density of the loss Hessian (stochastic Lanczos quadrature, density.csv) at up to "
        f"{o.density_snapshots} checkpoints per group (darker = later), each run interpolated on a common eigenvalue "
        "grid (zero outside its own), mean over the seeds in means (the band over seeds is in the CSV, not drawn); "
        "log density axis, cut 5 decades below the peak."
    )
    return FigureResult("density", "Spectral density snapshots", caption, fig, data)
