"""Motion of the top eigenspace: displacement, overlaps, two-time (aging) overlap, gradient alignment."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

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

DISPLACEMENT_PANELS = {
    "displacement_matched_plain": "matched, plain Hungarian 2(1−|⟨v_i,w_π(i)⟩|)",
    "displacement_matched_cluster": "matched, cluster-aware",
    "displacement_ranked": "rank by rank",
}


def displacement_figure(tables: SweepTables, o: FigureOptions) -> FigureResult | None:
    data = agg.displacement_data(tables, o.ranks, o.level)
    if present(data).empty:
        return None
    ranks = ranks_text(agg.leading_ranks(tables.table("trajectory"), o.ranks))
    fig, axes = new_figure(len(agg.DISPLACEMENTS), sharey=True, width=3.3)
    for ax, metric in zip(axes, agg.DISPLACEMENTS, strict=True):
        for g in o.groups:
            draw_series(
                ax,
                data[(data["group"] == g) & (data["metric"] == metric)],
                "step",
                o.colors[g],
                g,
                marker="o",
            )
        ax.set_title(DISPLACEMENT_PANELS[metric], fontsize=9)
        step_axis(ax, o.log_x, "training step (later checkpoint of the pair)")
    axes[0].set_ylim(bottom=0.0)
    axes[0].set_ylabel(f"displacement, mean of ranks {ranks}")
    note_individual(axes[0], data)
    legend_below(fig, axes[0])
    caption = (
        "Motion of the leading Hessian eigenvectors between consecutive analyzed checkpoints t < t′: displacement "
        f"2(1 − overlap) (0 = unchanged, 2 = orthogonal), averaged over ranks {ranks}, plotted at t′. Left: matched, "
        "plain Hungarian: π maximizes Σ⟨v_i, w_π(i)⟩² and the overlap is |⟨v_i, w_π(i)⟩|, one vector against its "
        "match (trajectory.csv displacement_matched_plain). Middle: matched, cluster-aware: where π(i) (or i) lies in "
        "a near-degenerate cluster the overlap is ||P v_i|| with P the projection on that cluster's span, so a "
        "rotation inside the cluster is not motion (displacement_matched_cluster; clusters: neighbour gap and spread "
        "≤ analysis.cluster_rtol relative, never merged through the assignment; never above the plain value). Right: "
        "rank by rank, |⟨v_i(t), v_i(t′)⟩| (a crossing shows as motion). Checkpoint spacing is not uniform, so the "
        "displacement is per checkpoint interval, not per step. " + band_text(o)
    )
    return FigureResult("displacement", "Eigenvector displacement", caption, fig, data)


def overlap_endpoints_figure(tables: SweepTables, o: FigureOptions) -> FigureResult | None:
    data = agg.endpoint_overlap_data(tables, o.level)
    if present(data).empty:
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
    legend_below(fig, axes[0])
    caption = (
        "Overlap of the top-k eigenspace at each checkpoint with that of the first (left) and of the last analyzed "
        "checkpoint (right): ||Q_aᵀQ_b||²_F / k, the mean squared cosine of the principal angles (1 = same "
        "subspace, about k/P for random subspaces). " + band_text(o)
    )
    return FigureResult(
        "overlap_endpoints", "Subspace overlap with the first and last checkpoint", caption, fig, data
    )


def aging_heatmap_figure(tables: SweepTables, o: FigureOptions) -> FigureResult | None:
    data = agg.two_time_data(tables, o.level)
    data = present(data)
    if data.empty:
        return None
    groups = present_groups(o, data)
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
        # every checkpoint labelled when they fit; else an even subset, first and last included
        count = len(steps) if len(steps) <= 12 else 8
        ticks = np.unique(np.round(np.linspace(0, len(steps) - 1, count)).astype(int))
        ax.set_xticks(ticks, [f"{steps[i]:g}" for i in ticks], rotation=45)
        ax.set_yticks(ticks, [f"{steps[i]:g}" for i in ticks])
        ax.set_xlabel("t = t_w + τ (step)")
        ax.set_ylabel("t_w (step)")
        ax.set_title(g, color=o.colors[g])
        ax.grid(False)
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.8, label="C(t_w, t_w+τ)")
    caption = (
        "Two-time overlap C(t_w, t_w + τ) = ||Q(t_w)ᵀQ(t_w+τ)||²_F / k of the top-k eigenspaces for every pair of "
        "analyzed checkpoints (trajectory.csv subspace_overlap), mean over the seeds in means, one panel per group. "
        "Axes are indexed by checkpoint (labels: steps), so log-spaced checkpoints are evenly spaced; the diagonal is 1 "
        "by definition; only t_w < t is computed."
    )
    return FigureResult("aging_heatmap", "Two-time overlap (heatmap)", caption, fig, data)


def aging_curves_figure(tables: SweepTables, o: FigureOptions, max_curves: int = 8) -> FigureResult | None:
    data = agg.two_time_data(tables, o.level)
    data = present(data)
    data = data[data["tau"] > 0] if not data.empty else data
    if data.empty:
        return None
    groups = present_groups(o, data)
    fig, axes = per_group_axes(o, groups)
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
                band=False,  # one band per waiting time would cover the panel
            )
        set_log(ax, "x")
        ax.set_xlabel("lag τ (steps, log)")
        ax.set_ylim(-0.02, 1.05)
        legend(ax, fontsize=7, loc="lower left")  # C decays with τ: the lower left stays empty
    next(iter(axes.values())).set_ylabel("C(t_w, t_w+τ)")
    caption = (
        "Aging: the two-time overlap C(t_w, t_w + τ) of the top-k eigenspaces against the lag τ, one curve per "
        f"waiting time t_w (up to {max_curves}, evenly chosen; darker = later t_w), mean over the seeds in means. "
        "Curves that decay more slowly at later t_w show aging. No bands (one per curve would cover the panel); "
        f"the {o.level:.0%} t-interval over seeds of every point is in the CSV (lo, hi; band_lo, band_hi cut to [0, 1])."
    )
    return FigureResult(
        "aging_curves",
        "Two-time overlap against lag (aging)",
        caption,
        fig,
        pd.concat(kept, ignore_index=True),
    )


def alignment_figure(tables: SweepTables, o: FigureOptions) -> FigureResult | None:
    data = agg.alignment_data(tables, o.level)
    measured = data[data["metric"] != "random_alignment"] if not data.empty else data
    if present(measured).empty:
        return None
    baseline = present(data, "random_alignment")
    fig, axes = new_figure(2, sharey=True)
    log = log_if_positive(axes[0], present(data)["mean"])  # spans decades: k/P is far below the rest
    if log:
        data = on_log_axis(data)
    values = baseline["mean"].round(12).unique()
    for ax, metric, what in zip(
        axes,
        ("grad_alignment", "update_alignment"),
        ("full-batch gradient", "parameter change between checkpoints"),
        strict=True,
    ):
        for g in o.groups:
            draw_series(ax, data[(data["group"] == g) & (data["metric"] == metric)], "step", o.colors[g], g)
        if len(values) == 1:  # every group has the same k/P: one gray line
            ax.axhline(values[0], color="0.3", linestyle=":", linewidth=1.2, label="random direction, k/P")
        elif len(values) > 1:
            for _, row in baseline.iterrows():
                ax.axhline(row["mean"], color=o.colors[row["group"]], linestyle=":", linewidth=1.2)
            ax.plot([], [], color="0.3", linestyle=":", label="random direction, k/P (per group)")
        ax.set_title(what)
        step_axis(ax, o.log_x)
    axes[0].set_ylabel("fraction in the top-k eigenspace")
    note_individual(axes[0], data)
    legend_below(fig, axes[0])
    if len(values) == 1:
        kp = f" (k/P = {values[0]:.3g})"
    else:
        kp = " (" + ", ".join(f"{r['group']}: {r['mean']:.3g}" for _, r in baseline.iterrows()) + ")"
    caption = (
        "Fraction ||Π g||² / ||g||² of a direction g in the span of the top-k Hessian eigenvectors (Π: the "
        "orthogonal projection on that span; summary.csv). Left: g = the full-batch gradient of the Hessian-set "
        "loss at each checkpoint (grad_alignment). Right: g = θ(t) − θ(t_prev), the change of the parameters "
        "since the previous analyzed checkpoint, projected on the top-k space at t_prev and plotted at t "
        "(update_alignment; it sums many optimizer steps when checkpoints are far apart). "
        + (
            "Dotted: k/P, the expected fraction for a uniformly random direction (k = analysis top_k, P = number "
            f"of parameters, from analysis.json){kp}. "
            if len(values)
            else ""
        )
        + band_text(o, log)
    )
    return FigureResult("alignment", "Gradient and update alignment", caption, fig, data)


def events_figure(tables: SweepTables, o: FigureOptions) -> FigureResult | None:
    data = agg.events_data(tables, o.level)
    if present(data).empty or not (present(data)["mean"] > 0).any():
        return None
    counts = agg.event_counts(tables)
    pairs = sorted({(a, b) for a, b in zip(data["step_a"], data["step_b"], strict=True)}, key=lambda p: p[1])
    where = {p: i for i, p in enumerate(pairs)}
    groups = present_groups(o, present(data))
    width = 0.8 / len(groups)
    fig, axes = new_figure(2, sharey=True, width=max(3.6, 0.45 * len(pairs) + 1.0))
    for ax, metric, what in zip(
        axes, ("crossings", "clusters"), ("eigenvalue crossings", "near-degenerate clusters"), strict=True
    ):
        for j, g in enumerate(groups):
            offset = (j - (len(groups) - 1) / 2) * width
            rows = present(data[(data["group"] == g) & (data["metric"] == metric)])
            means = rows[rows["run"].fillna("") == ""]
            x = np.array([where[(a, b)] for a, b in zip(means["step_a"], means["step_b"], strict=True)])
            ax.bar(x + offset, means["mean"], width=width, color=o.colors[g], alpha=0.45, label=g)
            seeds = counts[(counts["group"] == g) & (counts["metric"] == metric)]
            x = np.array(
                [where.get((a, b), np.nan) for a, b in zip(seeds["step_a"], seeds["step_b"], strict=True)]
            )
            diverged = ~seeds["status"].isin(agg.IN_MEANS).to_numpy()
            ax.plot(x[~diverged] + offset, seeds["count"][~diverged], "o", color=o.colors[g], markersize=3)
            ax.plot(x[diverged] + offset, seeds["count"][diverged], "x", color=o.colors[g], markersize=5)
        ax.set_title(what)
        ax.set_xticks(range(len(pairs)), [f"{a:g}→{b:g}" for a, b in pairs], rotation=45, ha="right")
        ax.set_xlabel("checkpoint pair (steps)")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(False, axis="x")
    axes[0].set_ylabel("events per checkpoint pair")
    axes[0].plot([], [], "o", color="0.4", markersize=3, label="one seed")
    if (~counts["status"].isin(agg.IN_MEANS)).any():
        axes[0].plot([], [], "x", color="0.4", markersize=5, label="diverged/failed run (not in the bar)")
    legend_below(fig, axes[0])
    caption = (
        "Events between consecutive analyzed checkpoints t → t′ among the top-k eigenvectors (events.csv; k = "
        "analysis top_k), counted per pair; a pair without events counts 0. Bars: mean over seeds; dots: each "
        "seed. Left: crossings, an eigenvector matched one to one with |overlap| ≥ √½ whose rank changed (its "
        "eigenvalue passed another). Right: groups of ranks compared as one subspace because their eigenvalues are "
        "near-degenerate at t or t′: consecutive ranks whose gap is ≤ analysis.cluster_rtol · max(|λ_i|, |λ_i+1|) "
        "and whose spread max − min is ≤ analysis.cluster_rtol · max|λ| over the cluster (a wider chain is cut at its "
        "largest gap); one group per cluster (with the ranks its members are matched to at the other time), clusters "
        "are not merged through the assignment. The x axis is indexed by pair, not "
        f"by step. No bands (counts of a few seeds); the {o.level:.0%} t-interval over seeds is in the CSV."
    )
    return FigureResult("events", "Eigenvalue crossings and clusters", caption, fig, data)
