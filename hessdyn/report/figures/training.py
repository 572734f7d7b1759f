"""Loss and accuracy against step (metrics/train.csv)."""

from __future__ import annotations

from hessdyn.report import aggregate as agg
from hessdyn.report.bands import on_log_axis
from hessdyn.report.figures.base import FigureResult, band_text, present
from hessdyn.report.style import (
    FigureOptions,
    draw_series,
    legend_below,
    log_if_positive,
    new_figure,
    note_individual,
    step_axis,
)
from hessdyn.report.tables import SweepTables


def _training(tables: SweepTables, o: FigureOptions, metric: str) -> FigureResult | None:
    data = agg.training_data(tables, o.level, o.batch_curves)
    data = data[data["metric"] == metric] if not data.empty else data
    evals = present(data[data["source"] == "eval"]) if not data.empty else data
    if evals.empty:
        return None
    fig, (ax_train, ax_test) = new_figure(2, sharey=True)
    log = metric == "loss" and log_if_positive(ax_train, evals["mean"])  # shared y: both panels
    if log:
        data = on_log_axis(data)
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
        ax_train.set_ylabel("loss (mean cross-entropy, nats)")
    else:
        ax_train.set_ylabel("accuracy (fraction correct)")
    note_individual(ax_train, data)
    if o.batch_curves and (data["source"] == "batch").any():
        ax_train.plot([], [], color="0.4", linewidth=0.6, label="minibatch running mean")
    legend_below(fig, ax_train)
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
        + band_text(o, log)
    )
    return FigureResult(metric, "Loss" if metric == "loss" else "Accuracy", caption, fig, data)


def loss_figure(tables: SweepTables, o: FigureOptions) -> FigureResult | None:
    return _training(tables, o, "loss")


def accuracy_figure(tables: SweepTables, o: FigureOptions) -> FigureResult | None:
    return _training(tables, o, "accuracy")
