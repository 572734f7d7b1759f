"""The report's figures: one function per figure, each returning the figure and the data drawn.

A function returns None when no run has the data it needs; the page then lists the figure as not
computed instead of drawing it empty. Numbers come from :mod:`hessdyn.report.aggregate`; nothing here
computes a quantity. Lines are means over seeds, bands the t-interval of the mean (see ``aggregate``),
dashed lines ending in × individual diverged/failed runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from hessdyn.report import aggregate as agg
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


def _band_text(o: FigureOptions) -> str:
    return (
        f"Lines: mean over seeds; bands: {o.level:.0%} t-interval of the mean over seeds (none with one seed). "
        "Dashed lines ending in × are diverged or failed runs, drawn individually and left out of the means."
    )


def _present(data: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    if data.empty:
        return data
    rows = data if metric is None else data[data["metric"] == metric]
    return rows[np.isfinite(rows["mean"].astype(float))]


def _groups(o: FigureOptions, data: pd.DataFrame) -> list[str]:
    present = set(data["group"])
    return [g for g in o.groups if g in present]


def _per_group_axes(
    o: FigureOptions, groups: list[str], sharey: bool = True
) -> tuple[Figure, dict[str, Axes]]:
    fig, axes = new_figure(len(groups), sharey=sharey)
    for g, ax in zip(groups, axes, strict=True):
        ax.set_title(g, color=o.colors[g])
    return fig, dict(zip(groups, axes, strict=True))


# ----------------------------------------------------------------------------------------- training
def _training(tables: SweepTables, o: FigureOptions, metric: str) -> FigureResult | None:
    data = agg.training_data(tables, o.level, o.batch_curves)
    data = data[data["metric"] == metric] if not data.empty else data
    evals = _present(data[data["source"] == "eval"]) if not data.empty else data
    if evals.empty:
        return None
    fig, (ax_train, ax_test) = new_figure(2, sharey=True)
    for split, ax in (("train", ax_train), ("test", ax_test)):
        for g in o.groups:
            rows = data[(data["group"] == g) & (data["split"] == split)]
            draw_series(ax, rows[rows["source"] == "eval"], "step", o.colors[g], g)
            batch = rows[(rows["source"] == "batch") & (rows["run"].fillna("") == "")]
            if not batch.empty:
                ax.plot(batch["step"], batch["mean"], color=o.colors[g], linewidth=0.6, alpha=0.6)
        ax.set_title(f"{split} split")
        step_axis(ax, o.log_x)
    if metric == "loss":
        log_if_positive(ax_train, evals["mean"])
        ax_train.set_ylabel("loss (mean cross-entropy, nats)")
    else:
        ax_train.set_ylabel("accuracy (fraction correct)")
    note_individual(ax_train, data)
    if o.batch_curves and (data["source"] == "batch").any():
        ax_train.plot([], [], color="0.4", linewidth=0.6, label="minibatch running mean")
    legend(ax_train)
    what = (
        "Cross-entropy loss (mean over the examples, nats)"
        if metric == "loss"
        else "Accuracy (fraction of examples classified correctly)"
    )
    caption = (
        f"{what} on the whole train and test split (metrics/train.csv rows with source=eval) against "
        "training step (optimizer steps). "
        + (
            "Thin lines: mean over seeds of the running minibatch mean since the previous log row. "
            if o.batch_curves
            else ""
        )
        + _band_text(o)
    )
    return FigureResult(metric, "Loss" if metric == "loss" else "Accuracy", caption, fig, data)


def loss_figure(tables: SweepTables, o: FigureOptions) -> FigureResult | None:
    return _training(tables, o, "loss")


def accuracy_figure(tables: SweepTables, o: FigureOptions) -> FigureResult | None:
    return _training(tables, o, "accuracy")


# ---------------------------------------------------------------------------------------- curvature
def eigenvalues_figure(tables: SweepTables, o: FigureOptions) -> FigureResult | None:
    data = agg.eigenvalue_data(tables, o.ranks, o.level)
    eig = _present(data, "eigenvalue")
    if eig.empty:
        return None
    groups = _groups(o, eig)
    fig, axes = _per_group_axes(o, groups)
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
        thr = _present(rows, "stability_threshold")
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
        + _band_text(o)
    )
    return FigureResult("eigenvalues", "Top Hessian eigenvalues", caption, fig, data)


def stability_figure(tables: SweepTables, o: FigureOptions) -> FigureResult | None:
    data = agg.stability_data(tables, o.level)
    if _present(data, "stability_ratio").empty:
        return None
    fig, (ax, ax_ratio) = new_figure(2, width=4.2)
    for g in o.groups:
        rows = data[data["group"] == g]
        for value, threshold, style in (
            ("lambda_max", "stability_threshold", "-"),
            ("precond_lambda_max", "precond_threshold", ":"),
        ):
            if _present(rows, value).empty:
                continue
            draw_series(ax, rows[rows["metric"] == value], "step", o.colors[g], g, linestyle=style)
            thr = _present(rows, threshold)
            thr = thr[thr["run"].fillna("") == ""]
            ax.plot(thr["step"], thr["mean"], color=o.colors[g], linestyle="--", linewidth=0.9)
        draw_series(ax_ratio, rows[rows["metric"] == "stability_ratio"], "step", o.colors[g], g)
    ax.plot([], [], color="0.4", linestyle="-", label="λmax (SGD, momentum)")
    ax.plot([], [], color="0.4", linestyle=":", label="preconditioned λmax (Adam)")
    ax.plot([], [], color="0.4", linestyle="--", label="its stability threshold")
    ax.set_ylabel("eigenvalue")
    log_if_positive(ax, _present(data)["mean"][_present(data)["metric"] != "stability_ratio"])
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
        + _band_text(o)
    )
    return FigureResult("stability", "Sharpness against the stability threshold", caption, fig, data)


def ws_bound_figure(tables: SweepTables, o: FigureOptions) -> FigureResult | None:
    data = agg.ws_data(tables, o.level)
    if _present(data, "ws_bound").empty:
        return None
    fig, (ax, ax_ratio) = new_figure(2)
    for g in o.groups:
        rows = data[data["group"] == g]
        draw_series(ax, rows[rows["metric"] == "lambda_max"], "step", o.colors[g], g)
        ws = rows[rows["metric"] == "ws_bound"]
        draw_series(ax, ws, "step", o.colors[g], None, linestyle="--")
        se = _present(rows, "ws_bound_se")
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
    log_if_positive(ax, _present(data)["mean"][_present(data)["metric"].isin(["lambda_max", "ws_bound"])])
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
        "dominates the spectrum). " + _band_text(o)
    )
    return FigureResult("ws_bound", "λmax and the Wolkowicz–Styan bound", caption, fig, data)


def trace_figure(tables: SweepTables, o: FigureOptions) -> FigureResult | None:
    data = agg.trace_data(tables, o.level)
    if _present(data).empty:
        return None
    fig, (ax,) = new_figure(1, width=5.0, height=3.2)
    for g in o.groups:
        draw_series(ax, data[data["group"] == g], "step", o.colors[g], g)
    ax.set_ylabel("tr H (sum of all eigenvalues)")
    log_if_positive(ax, _present(data)["mean"])
    step_axis(ax, o.log_x)
    note_individual(ax, data)
    legend(ax)
    caption = (
        "Trace of the loss Hessian (Hutch++ estimate, summary.csv trace) against training step. "
        + _band_text(o)
    )
    return FigureResult("trace", "Hessian trace", caption, fig, data)


def alignment_figure(tables: SweepTables, o: FigureOptions) -> FigureResult | None:
    data = agg.alignment_data(tables, o.level)
    if _present(data).empty:
        return None
    fig, axes = new_figure(2, sharey=True)
    for ax, metric, what in zip(
        axes, ("grad_alignment", "update_alignment"), ("full-batch gradient", "optimizer update"), strict=True
    ):
        for g in o.groups:
            draw_series(ax, data[(data["group"] == g) & (data["metric"] == metric)], "step", o.colors[g], g)
        ax.set_title(what)
        step_axis(ax, o.log_x)
    axes[0].set_ylabel("fraction in top-k eigenspace")
    note_individual(axes[0], data)
    legend(axes[0])
    caption = (
        "Fraction ||P g||² / ||g||² of the full-batch gradient (left) and of the optimizer's update (right) that lies "
        "in the span of the top-k Hessian eigenvectors (summary.csv grad_alignment, update_alignment); a random "
        "direction gives about k/P. " + _band_text(o)
    )
    return FigureResult("alignment", "Gradient and update alignment", caption, fig, data)


# --------------------------------------------------------------------------------------- trajectory
def displacement_figure(tables: SweepTables, o: FigureOptions) -> FigureResult | None:
    data = agg.displacement_data(tables, o.ranks, o.level)
    if _present(data).empty:
        return None
    fig, axes = new_figure(2, sharey=True)
    for ax, metric, what in zip(
        axes,
        ("displacement_matched", "displacement_ranked"),
        ("matched (cluster-aware)", "rank by rank"),
        strict=True,
    ):
        for g in o.groups:
            draw_series(
                ax,
                data[(data["group"] == g) & (data["metric"] == metric)],
                "step",
                o.colors[g],
                g,
                marker="o",
            )
        ax.set_title(what)
        step_axis(ax, o.log_x, "training step (later checkpoint of the pair)")
    axes[0].set_ylabel(f"displacement 2(1−|overlap|), mean of ranks 1–{o.ranks}")
    note_individual(axes[0], data)
    legend(axes[0])
    caption = (
        "Motion of the leading Hessian eigenvectors between consecutive analyzed checkpoints: displacement "
        "2(1 − |⟨v(t), v(t′)⟩|) (0 = unchanged, 2 = orthogonal), averaged over ranks 1–"
        f"{o.ranks}, plotted at the later checkpoint. Left: each eigenvector against its match at t′ (cluster-aware); "
        "right: rank i against rank i (a crossing shows as motion). Checkpoint spacing is not uniform, so the "
        "displacement is per checkpoint interval, not per step. " + _band_text(o)
    )
    return FigureResult("displacement", "Eigenvector displacement", caption, fig, data)


def overlap_endpoints_figure(tables: SweepTables, o: FigureOptions) -> FigureResult | None:
    data = agg.endpoint_overlap_data(tables, o.level)
    if _present(data).empty:
        return None
    fig, axes = new_figure(2, sharey=True)
    for ax, which in zip(axes, ("first", "last"), strict=True):
        for g in o.groups:
            draw_series(
                ax, data[(data["group"] == g) & (data["with"] == which)], "step", o.colors[g], g, marker="o"
            )
        ax.set_title(f"with the {which} checkpoint")
        ax.set_ylim(-0.02, 1.05)
        step_axis(ax, o.log_x)
    axes[0].set_ylabel("subspace overlap ||Q_aᵀQ_b||²_F / k")
    note_individual(axes[0], data)
    legend(axes[0])
    caption = (
        "Overlap of the top-k eigenspace at each checkpoint with that of the first (left) and of the last analyzed "
        "checkpoint (right): ||Q_aᵀQ_b||²_F / k, the mean squared cosine of the principal angles (1 = same "
        "subspace, about k/P for random subspaces). " + _band_text(o)
    )
    return FigureResult(
        "overlap_endpoints", "Subspace overlap with the first and last checkpoint", caption, fig, data
    )


def aging_heatmap_figure(tables: SweepTables, o: FigureOptions) -> FigureResult | None:
    data = agg.two_time_data(tables, o.level)
    data = _present(data)
    if data.empty:
        return None
    groups = _groups(o, data)
    fig, axes = new_figure(len(groups), width=3.4, height=3.1)
    image = None
    for g, ax in zip(groups, axes, strict=True):
        rows = data[data["group"] == g]
        steps = np.unique(np.concatenate([rows["t_w"], rows["t"]]))
        index = {s: i for i, s in enumerate(steps)}
        grid = np.full((len(steps), len(steps)), np.nan)
        np.fill_diagonal(grid, 1.0)
        for _, r in rows.iterrows():
            grid[index[r["t_w"]], index[r["t"]]] = r["mean"]
        image = ax.imshow(grid, origin="lower", vmin=0.0, vmax=1.0, cmap="viridis", interpolation="nearest")
        ticks = np.unique(np.round(np.linspace(0, len(steps) - 1, min(6, len(steps)))).astype(int))
        ax.set_xticks(ticks, [f"{steps[i]:g}" for i in ticks], rotation=45)
        ax.set_yticks(ticks, [f"{steps[i]:g}" for i in ticks])
        ax.set_xlabel("t = t_w + τ (step)")
        ax.set_ylabel("t_w (step)")
        ax.set_title(g, color=o.colors[g])
        ax.grid(False)
    fig.colorbar(image, ax=axes, shrink=0.8, label="C(t_w, t_w+τ)")
    caption = (
        "Two-time overlap C(t_w, t_w + τ) = ||Q(t_w)ᵀQ(t_w+τ)||²_F / k of the top-k eigenspaces for every pair of "
        "analyzed checkpoints (trajectory.csv subspace_overlap), mean over the seeds in means, one panel per group. "
        "Axes are indexed by checkpoint (labels: steps), so log-spaced checkpoints are evenly spaced; the diagonal is 1."
    )
    return FigureResult("aging_heatmap", "Two-time overlap (heatmap)", caption, fig, data)


def aging_curves_figure(tables: SweepTables, o: FigureOptions, max_curves: int = 8) -> FigureResult | None:
    data = agg.two_time_data(tables, o.level)
    data = _present(data)
    data = data[data["tau"] > 0] if not data.empty else data
    if data.empty:
        return None
    groups = _groups(o, data)
    fig, axes = _per_group_axes(o, groups)
    kept = []
    for g, ax in axes.items():
        rows = data[data["group"] == g]
        waits = np.unique(rows["t_w"])
        waits = waits[
            np.unique(np.round(np.linspace(0, len(waits) - 1, min(max_curves, len(waits)))).astype(int))
        ]
        for i, tw in enumerate(waits):
            sub = rows[rows["t_w"] == tw]
            kept.append(sub)
            draw_series(
                ax,
                sub,
                "tau",
                shade(o.colors[g], len(waits) - 1 - i, len(waits)),
                f"t_w={tw:g}" if i in (0, len(waits) - 1) else None,
                marker="o",
                linewidth=1.0,
            )
        set_log(ax, "x")
        ax.set_xlabel("lag τ (steps, log)")
        ax.set_ylim(-0.02, 1.05)
        legend(ax, fontsize=7)
    next(iter(axes.values())).set_ylabel("C(t_w, t_w+τ)")
    caption = (
        "Aging: the two-time overlap C(t_w, t_w + τ) of the top-k eigenspaces against the lag τ, one curve per "
        f"waiting time t_w (up to {max_curves}, evenly chosen; darker = later t_w), mean over the seeds in means. "
        "Curves that decay more slowly at later t_w show aging."
    )
    return FigureResult(
        "aging_curves",
        "Two-time overlap against lag (aging)",
        caption,
        fig,
        pd.concat(kept, ignore_index=True),
    )


# ------------------------------------------------------------------------------------- localization
def ipr_figure(tables: SweepTables, o: FigureOptions) -> FigureResult | None:
    data = agg.ipr_data(tables, o.ranks, o.level)
    if _present(data).empty:
        return None
    nulls = agg.null_band_data(tables, o.ranks)
    groups = _groups(o, _present(data))
    fig, axes = _per_group_axes(o, groups)
    ranks = sorted(_present(data)["rank"].unique())
    null_style = {
        "random": ("0.6", None, "random-vector null"),
        "architecture": ("#b08d57", "///", "architecture null (init)"),
    }
    for g, ax in axes.items():
        for null, row in nulls[nulls["group"] == g].set_index("null").iterrows():
            color, hatch, label = null_style.get(str(null), ("0.8", "..", f"{null} null"))
            ax.axhspan(
                row["lo"],
                row["hi"],
                facecolor=color if hatch is None else "none",
                edgecolor=color,
                hatch=hatch,
                alpha=0.35,
                linewidth=0,
                label=label,
            )
            ax.axhline(row["mean"], color=color, linewidth=0.8)
        rows = data[data["group"] == g]
        for i, r in enumerate(ranks):
            draw_series(
                ax,
                rows[rows["rank"] == r],
                "step",
                shade(o.colors[g], i, len(ranks)),
                f"rank {int(r)}" if i in (0, len(ranks) - 1) else None,
                linewidth=1.4 if i == 0 else 0.9,
            )
        step_axis(ax, o.log_x)
        note_individual(ax, rows)
        legend(ax, fontsize=7)
    first = next(iter(axes.values()))
    first.set_ylabel("normalized IPR  P·Σv⁴ / 3")
    log_if_positive(first, pd.concat([_present(data)["mean"], nulls["mean"]]))
    caption = (
        f"Localization of the leading eigenvectors (ranks 1–{len(ranks)}, darker = rank 1): normalized inverse "
        "participation ratio P·Σ_j v_j⁴ / 3, about 1 for a random unit vector and larger when the mass concentrates "
        "on few parameters (spectrum.csv ipr_normalized). Horizontal bands: null models from nulls.csv, mean ± one "
        "standard deviation over the null samples (seeds and leading ranks) of the group's runs: random unit "
        "vectors (gray) and top eigenvectors at random initializations of the same architecture (hatched). "
        + _band_text(o)
    )
    data = pd.concat([data, nulls], ignore_index=True, sort=False)
    return FigureResult("ipr", "Eigenvector localization (normalized IPR)", caption, fig, data)


def layer_mass_figure(tables: SweepTables, o: FigureOptions) -> FigureResult | None:
    data = agg.layer_mass_data(tables, o.ranks, o.level)
    data = _present(data)
    if data.empty:
        return None
    import matplotlib

    groups = _groups(o, data)
    fig, axes = _per_group_axes(o, groups)
    params = list(dict.fromkeys(data["param"]))
    cmap = matplotlib.colormaps["viridis"]
    colors = {
        p: ("0.75" if p == "other" else cmap(i / max(1, len(params) - 1))) for i, p in enumerate(params)
    }
    for g, ax in axes.items():
        wide = (
            data[data["group"] == g]
            .pivot_table(index="step", columns="param", values="mean", aggfunc="first")
            .fillna(0.0)
        )
        wide = wide[[p for p in params if p in wide.columns]]
        ax.stackplot(
            wide.index.to_numpy(dtype=float),
            wide.to_numpy().T,
            labels=list(wide.columns),
            colors=[colors[p] for p in wide.columns],
            alpha=0.9,
        )
        ax.set_ylim(0, 1)
        step_axis(ax, o.log_x)
    first = next(iter(axes.values()))
    first.set_ylabel("share of squared mass")
    handles, labels = first.get_legend_handles_labels()
    fig.legend(
        handles, labels, loc="outside lower center", ncols=min(4, len(labels)), frameon=False, fontsize=7
    )
    caption = (
        f"Where the leading eigenvectors live: share Σ_(j in tensor) v_j² of each parameter tensor (layer_mass.csv), "
        f"averaged over ranks 1–{o.ranks} and over the seeds in means, stacked (shares sum to 1). Beyond 9 tensors the "
        "smallest are merged into 'other'."
    )
    return FigureResult("layer_mass", "Eigenvector mass per layer", caption, fig, data)


def density_figure(tables: SweepTables, o: FigureOptions) -> FigureResult | None:
    data = agg.density_data(tables, o.density_snapshots, o.level)
    data = _present(data)
    if data.empty:
        return None
    groups = _groups(o, data)
    fig, axes = _per_group_axes(o, groups, sharey=False)
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


# ------------------------------------------------------------------------------------------ reparam
def reparam_figure(tables: SweepTables, o: FigureOptions) -> FigureResult | None:
    data = _present(agg.reparam_data(tables, o.level))
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
    for ax, metric in zip(axes, metrics, strict=True):
        rows = data[data["metric"] == metric]
        for g in o.groups:
            draw_series(ax, rows[rows["group"] == g], "alpha", o.colors[g], g, marker="o")
        set_log(ax, "x")
        if (rows["mean"] > 0).all():
            set_log(ax, "y")
        ax.set_title(names[metric])
        ax.set_xlabel("rescaling α (log)")
    axes[0].set_ylabel("value at the rescaled weights")
    legend(axes[0])
    caption = (
        "Dinh et al. reparametrization: each layer pair rescaled by α and 1/α (the network function is unchanged), "
        "sharpness measures at each run's last analyzed step against α, log–log (reparam.csv). λmax, tr H and "
        "ε-sharpness change with α although the function does not; the scale-invariant measures should stay flat. "
        + _band_text(o)
    )
    return FigureResult("reparam", "Sharpness under reparametrization", caption, fig, data)


FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec("loss", "Loss", loss_figure, "metrics/train.csv rows with source=eval"),
    FigureSpec("accuracy", "Accuracy", accuracy_figure, "metrics/train.csv rows with source=eval"),
    FigureSpec(
        "eigenvalues", "Top Hessian eigenvalues", eigenvalues_figure, "analysis spectrum.csv (which=top)"
    ),
    FigureSpec(
        "stability",
        "Sharpness against the stability threshold",
        stability_figure,
        "summary.csv stability_threshold or precond_threshold (optimizer metric group)",
    ),
    FigureSpec(
        "ws_bound",
        "λmax and the Wolkowicz–Styan bound",
        ws_bound_figure,
        "summary.csv ws_bound (trace metric group)",
    ),
    FigureSpec("trace", "Hessian trace", trace_figure, "summary.csv trace (trace metric group)"),
    FigureSpec(
        "displacement",
        "Eigenvector displacement",
        displacement_figure,
        "trajectory.csv displacement_matched/_ranked (trajectory metric group)",
    ),
    FigureSpec(
        "overlap_endpoints",
        "Subspace overlap with the first and last checkpoint",
        overlap_endpoints_figure,
        "trajectory.csv subspace_overlap (trajectory metric group)",
    ),
    FigureSpec(
        "aging_heatmap",
        "Two-time overlap (heatmap)",
        aging_heatmap_figure,
        "trajectory.csv subspace_overlap for all pairs (trajectory metric group)",
    ),
    FigureSpec(
        "aging_curves",
        "Two-time overlap against lag (aging)",
        aging_curves_figure,
        "trajectory.csv subspace_overlap for all pairs (trajectory metric group)",
    ),
    FigureSpec(
        "ipr",
        "Eigenvector localization (normalized IPR)",
        ipr_figure,
        "spectrum.csv ipr_normalized (localization metric group)",
    ),
    FigureSpec(
        "layer_mass",
        "Eigenvector mass per layer",
        layer_mass_figure,
        "layer_mass.csv (localization metric group)",
    ),
    FigureSpec(
        "density",
        "Spectral density snapshots",
        density_figure,
        "density.csv (density metric group, off by default)",
    ),
    FigureSpec(
        "alignment",
        "Gradient and update alignment",
        alignment_figure,
        "summary.csv grad_alignment/update_alignment (alignment metric group)",
    ),
    FigureSpec(
        "reparam",
        "Sharpness under reparametrization",
        reparam_figure,
        "reparam.csv (reparam metric group, ReLU MLPs only)",
    ),
)
