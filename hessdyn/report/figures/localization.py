"""Where the leading eigenvectors live: normalized IPR with null models, mass per layer."""

from __future__ import annotations

import pandas as pd

from hessdyn.report import aggregate as agg
from hessdyn.report.figures.base import FigureResult, band_text, per_group_axes, present, present_groups
from hessdyn.report.style import (
    FigureOptions,
    draw_series,
    legend,
    log_if_positive,
    note_individual,
    shade,
    step_axis,
)
from hessdyn.report.tables import SweepTables


def ipr_figure(tables: SweepTables, o: FigureOptions) -> FigureResult | None:
    data = agg.ipr_data(tables, o.ranks, o.level)
    if present(data).empty:
        return None
    nulls = agg.null_band_data(tables, o.ranks)
    groups = present_groups(o, present(data))
    fig, axes = per_group_axes(o, groups)
    ranks = sorted(present(data)["rank"].unique())
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
    log_if_positive(first, pd.concat([present(data)["mean"], nulls["mean"]]))
    caption = (
        f"Localization of the leading eigenvectors (ranks 1–{len(ranks)}, darker = rank 1): normalized inverse "
        "participation ratio P·Σ_j v_j⁴ / 3, about 1 for a random unit vector and larger when the mass concentrates "
        "on few parameters (spectrum.csv ipr_normalized). Horizontal bands: null models from nulls.csv, mean ± one "
        "standard deviation over the null samples (seeds and leading ranks) of the group's runs: random unit "
        "vectors (gray) and top eigenvectors at random initializations of the same architecture (hatched). "
        + band_text(o)
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
    caption = (
        f"Where the leading eigenvectors live: share Σ_(j in tensor) v_j² of each parameter tensor (layer_mass.csv), "
        f"averaged over ranks 1–{o.ranks} and over the seeds in means, stacked (shares sum to 1). Beyond 9 tensors the "
        "smallest are merged into 'other'."
    )
    return FigureResult("layer_mass", "Eigenvector mass per layer", caption, fig, data)
