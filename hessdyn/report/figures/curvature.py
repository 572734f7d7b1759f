"""Curvature against step: top eigenvalues, stability, Wolkowicz–Styan bound, trace, spectral density."""

from __future__ import annotations

from hessdyn.report import aggregate as agg
from hessdyn.report.figures.base import FigureResult, band_text, per_group_axes, present, present_groups
from hessdyn.report.style import (
    FigureOptions,
    draw_series,
    legend,
    log_if_positive,
    new_figure,
    note_individual,
    set_log,
    shade,
    step_axis,
)
from hessdyn.report.tables import SweepTables


def eigenvalues_figure(tables: SweepTables, o: FigureOptions) -> FigureResult | None:
    data = agg.eigenvalue_data(tables, o.ranks, o.level)
    eig = present(data, "eigenvalue")
    if eig.empty:
        return None
    groups = present_groups(o, eig)
    fig, axes = per_group_axes(o, groups)
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
                linewidth=1.4 if i == 0 else 0.9,
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
    first = next(iter(axes.values()))
    first.set_ylabel("eigenvalue of the loss Hessian")
    log_if_positive(first, eig["mean"])
    caption = (
        f"Top eigenvalues λ1…λ{len(ranks)} of the Hessian of the training loss (mean cross-entropy over the Hessian set; "
        "spectrum.csv, which=top) against training step, one panel per group, darker = larger. Dashed black line: "
        "the stability threshold of summary.csv where it applies, 2/η for SGD and (2+2β)/η with momentum (for Adam "
        "see the stability figure, which compares the preconditioned λmax with its threshold). "
        + band_text(o)
    )
    return FigureResult("eigenvalues", "Top Hessian eigenvalues", caption, fig, data)


def stability_figure(tables: SweepTables, o: FigureOptions) -> FigureResult | None:
    data = agg.stability_data(tables, o.level)
    if present(data, "stability_ratio").empty:
        return None
    fig, (ax, ax_ratio) = new_figure(2, width=4.2)
    for g in o.groups:
        rows = data[data["group"] == g]
        for value, threshold, style in (
            ("lambda_max", "stability_threshold", "-"),
            ("precond_lambda_max", "precond_threshold", ":"),
        ):
            if present(rows, value).empty:
                continue
            draw_series(ax, rows[rows["metric"] == value], "step", o.colors[g], g, linestyle=style)
            thr = present(rows, threshold)
            thr = thr[thr["run"].fillna("") == ""]
            ax.plot(thr["step"], thr["mean"], color=o.colors[g], linestyle="--", linewidth=0.9)
        draw_series(ax_ratio, rows[rows["metric"] == "stability_ratio"], "step", o.colors[g], g)
    ax.plot([], [], color="0.4", linestyle="-", label="λmax (SGD, momentum)")
    ax.plot([], [], color="0.4", linestyle=":", label="preconditioned λmax (Adam)")
    ax.plot([], [], color="0.4", linestyle="--", label="its stability threshold")
    ax.set_ylabel("eigenvalue")
    log_if_positive(ax, present(data)["mean"][present(data)["metric"] != "stability_ratio"])
    ax_ratio.axhline(1.0, color="0.25", linestyle="--", linewidth=1.0, label="stability edge")
    ax_ratio.set_ylabel("λmax / stability threshold")
    for a in (ax, ax_ratio):
        step_axis(a, o.log_x)
    note_individual(ax_ratio, data)
    legend(ax, fontsize=7)
    legend(ax_ratio, fontsize=7)
    caption = (
        "Sharpness against the optimizer's stability threshold (summary.csv). Left: λmax (solid) with 2/η for SGD and "
        "(2+2β)/η with momentum (dashed), and for Adam the largest eigenvalue of the preconditioned Hessian (dotted) "
        "with (2+2β1)/((1−β1)η) (dashed). Right: their ratio, λmax / (2/η) = ηλmax/2 for SGD; 1 is the edge of "
        "stability of the quadratic model. Groups whose optimizer has neither threshold are not drawn. "
        + band_text(o)
    )
    return FigureResult("stability", "Sharpness against the stability threshold", caption, fig, data)


def ws_bound_figure(tables: SweepTables, o: FigureOptions) -> FigureResult | None:
    data = agg.ws_data(tables, o.level)
    if present(data, "ws_bound").empty:
        return None
    fig, (ax, ax_ratio) = new_figure(2)
    for g in o.groups:
        rows = data[data["group"] == g]
        draw_series(ax, rows[rows["metric"] == "lambda_max"], "step", o.colors[g], g)
        ws = rows[rows["metric"] == "ws_bound"]
        draw_series(ax, ws, "step", o.colors[g], None, linestyle="--")
        se = present(rows, "ws_bound_se")
        if not se.empty:
            both = ws[ws["run"].fillna("") == ""].merge(se[["step", "mean"]], on="step", suffixes=("", "_se"))
            ax.errorbar(
                both["step"],
                both["mean"],
                yerr=both["mean_se"],
                color=o.colors[g],
                linestyle="none",
                capsize=2,
                linewidth=0.8,
            )
        draw_series(ax_ratio, rows[rows["metric"] == "lambda_max_over_ws"], "step", o.colors[g], g)
    ax.plot([], [], color="0.4", linestyle="--", label="WS upper bound")
    ax.set_ylabel("eigenvalue of the loss Hessian")
    log_if_positive(ax, present(data)["mean"][present(data)["metric"].isin(["lambda_max", "ws_bound"])])
    ax_ratio.axhline(1.0, color="0.25", linewidth=0.8)
    ax_ratio.set_ylabel("λmax / WS bound")
    for a in (ax, ax_ratio):
        step_axis(a, o.log_x)
    note_individual(ax, data)
    legend(ax)
    caption = (
        "Left: λmax (solid) beside the Wolkowicz–Styan upper bound μ + s·sqrt(P−1) from tr(H) and tr(H²) "
        "(dashed; error bars: the bound's estimator standard error ws_bound_se, mean over seeds, where the "
        "analysis recorded it). Right: λmax / bound (≤ 1 up to estimation error; near 1 when one outlier "
        "dominates the spectrum). " + band_text(o)
    )
    return FigureResult("ws_bound", "λmax and the Wolkowicz–Styan bound", caption, fig, data)


def trace_figure(tables: SweepTables, o: FigureOptions) -> FigureResult | None:
    data = agg.trace_data(tables, o.level)
    if present(data).empty:
        return None
    fig, (ax,) = new_figure(1, width=5.0, height=3.2)
    for g in o.groups:
        draw_series(ax, data[data["group"] == g], "step", o.colors[g], g)
    ax.set_ylabel("tr H (sum of all eigenvalues)")
    log_if_positive(ax, present(data)["mean"])
    step_axis(ax, o.log_x)
    note_individual(ax, data)
    legend(ax)
    caption = (
        "Trace of the loss Hessian (Hutch++ estimate, summary.csv trace) against training step. "
        + band_text(o)
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
