"""Where the leading eigenvectors live: normalized IPR with null models, mass per layer."""

from __future__ import annotations

import pandas as pd

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
    legend_below,
    log_if_positive,
    note_individual,
    shade,
    step_axis,
)
from hessdyn.report.tables import SweepTables

NULL_STYLE = {  # null -> (color, hatch, label); neutral colors, never a group's
    "random": ("0.55", None, "random-vector null"),
    "architecture": ("0.25", "////", "architecture null (init)"),
}


def ipr_figure(tables: SweepTables, o: FigureOptions) -> FigureResult | None:
    data = agg.ipr_data(tables, o.ranks, o.level)
    if present(data).empty:
        return None
    nulls = agg.null_band_data(tables, o.ranks)
    groups = present_groups(o, present(data))
    fig, axes = per_group_axes(o, groups)
    first = next(iter(axes.values()))
    log = log_if_positive(first, pd.concat([present(data)["mean"], nulls["mean"]]))  # shared y
    if log:
        data, nulls = on_log_axis(data), on_log_axis(nulls)
    ranks = sorted(present(data)["rank"].unique())
    for g, ax in axes.items():
        for null, row in nulls[nulls["group"] == g].set_index("null").iterrows():
            color, hatch, label = NULL_STYLE.get(str(null), ("0.7", "..", f"{null} null"))
            ax.axhspan(
                row["band_lo"],
                row["band_hi"],
                facecolor=color if hatch is None else "none",
                edgecolor=color,
                hatch=hatch,
                alpha=0.3 if hatch is None else 0.5,
                linewidth=0,
                label=label,
            )
            ax.axhline(row["mean"], color=color, linewidth=0.8, linestyle="-" if hatch is None else "--")
        rows = data[data["group"] == g]
        for i, r in enumerate(ranks):
            draw_series(
                ax,
                rows[rows["rank"] == r],
                "step",
                shade(o.colors[g], i, len(ranks)),
                None,
                linewidth=1.6 if i == 0 else 0.8,
                band=i == 0,
            )
        step_axis(ax, o.log_x)
        note_individual(ax, rows)
    first.set_ylabel("normalized IPR  P·Σv⁴ / 3")
    # one legend below the panels, in gray: each panel's color is its group's (title)
    first.plot([], [], color="0.2", linewidth=1.6, label=f"rank {int(ranks[0])} (with band)")
    if len(ranks) > 1:
        first.plot([], [], color="0.7", linewidth=0.8, label=f"rank {int(ranks[-1])}")
    legend_below(fig, list(axes.values()))
    caption = (
        f"Localization of the leading eigenvectors (ranks {ranks_text(ranks)}, darker = rank 1): normalized "
        "inverse participation ratio P·Σ_j v_j⁴ / 3 (P parameters), about 1 for a random unit vector and up to P/3 "
        "when the mass concentrates on one parameter (spectrum.csv ipr_normalized). The band is drawn around "
        "rank 1 only (thin lines: the other ranks; every rank's band is in the CSV). Horizontal bands: null models "
        "from nulls.csv, mean (line) ± one standard deviation over the null samples (seeds and leading ranks) of the "
        "group's runs: random unit vectors (gray) and top eigenvectors at random initializations of the same "
        "architecture (hatched, dashed line). " + band_text(o, log, "band")
    )
    data = pd.concat([data, nulls], ignore_index=True, sort=False)
    return FigureResult("ipr", "Eigenvector localization (normalized IPR)", caption, fig, data)


def layer_mass_figure(tables: SweepTables, o: FigureOptions) -> FigureResult | None:
    data = agg.layer_mass_data(tables, o.ranks, o.level)
    data = present(data)
    if data.empty:
        return None
    import matplotlib

    groups = present_groups(o, data)
    fig, axes = per_group_axes(o, groups)
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
    ranks = ranks_text(agg.leading_ranks(tables.table("layer_mass"), o.ranks))
    caption = (
        f"Where the leading eigenvectors live: share Σ_(j in tensor) v_j² of each parameter tensor (layer_mass.csv), "
        f"averaged over ranks {ranks} and over the seeds in means, stacked (shares sum to 1). Beyond 9 tensors the "
        "smallest are merged into 'other'."
    )
    return FigureResult("layer_mass", "Eigenvector mass per layer", caption, fig, data)
