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


def gap_figure(tables: SweepTables, o: FigureOptions) -> FigureResult | None:
    data = agg.gap_data(tables, o.level)
    if present(data, "loss_gap").empty:
        return None
    fig, (ax_loss, ax_acc) = new_figure(2)
    for g in o.groups:
        rows = data[data["group"] == g]
        draw_series(ax_loss, rows[rows["metric"] == "loss_gap"], "step", o.colors[g], g)
        draw_series(ax_acc, rows[rows["metric"] == "accuracy_gap"], "step", o.colors[g], g)
    for ax in (ax_loss, ax_acc):
        ax.axhline(0.0, color="0.25", linewidth=0.8)
        step_axis(ax, o.log_x)
    ax_loss.set_ylabel("test loss − train loss (nats)")
    ax_acc.set_ylabel("train accuracy − test accuracy")
    note_individual(ax_loss, data)
    legend_below(fig, ax_loss)
    caption = (
        "Generalization gap against training step: test minus train loss (left; mean cross-entropy, the data "
        "loss without any regularizer's penalty) and train minus test accuracy (right), both over the whole "
        "splits (metrics/train.csv rows with source=eval), per run, then the mean over seeds. " + band_text(o)
    )
    return FigureResult("gap", "Train/test gap", caption, fig, data)
