"""The noise group's report: curves split by random-label fraction and batch size, the generalization scatter
and its rank correlations, on in-memory tables whose numbers are closed-form functions of the run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hessdyn.report import aggregate_noise as agg
from hessdyn.report.figures.noise import (
    noise_gamma_figure,
    noise_generalization_figure,
    noise_overlap_figure,
    noise_trace_ratio_figure,
)
from hessdyn.report.runs import RunInfo
from hessdyn.report.style import FigureOptions, group_colors
from hessdyn.report.tables import SweepTables

STEPS = (0, 10, 100)
GROUPS = ("adam", "sgd")
BATCHES = (16, None)
FRACTIONS = (0.0, 0.5)


def _value(group: int, batch: int, fraction: float, seed: int, step: int) -> float:
    return 0.1 + 0.2 * group + 0.05 * batch + 0.3 * fraction + 0.01 * seed + 0.001 * step


def _tables(statuses: dict[str, str] | None = None) -> SweepTables:
    runs, noise, gamma, summary, train = [], [], [], [], []
    for gi, g in enumerate(GROUPS):
        for bi, b in enumerate(BATCHES):
            for f in FRACTIONS:
                for seed in (0, 1):
                    name = f"{g},b={b},f={f},seed={seed}"
                    status = (statuses or {}).get(name, "completed")
                    config = {"optimizer.name": g, agg.BATCH_KEY: b, agg.FRACTION_KEY: f}
                    runs.append(RunInfo(Path(name), name, status, g, (gi,), seed, config, ()))
                    tag = {"run": name, "group": g, "seed": seed, "status": status}
                    for st in STEPS:
                        v = _value(gi, bi, f, seed, st)
                        noise.append(
                            {
                                **tag,
                                "step": st,
                                "overlap_covariance_hessian": v,
                                "random_overlap": 0.01,
                                "covariance_over_hessian": 10 * v,
                                "theta2_h_diagonal": v,
                                "theta_h_theta": 2 * v,
                            }
                        )
                        gamma.append({**tag, "step": st, "param": "all", "gamma": 1 + v})
                        gamma.append({**tag, "step": st, "param": "0.weight", "gamma": -5.0})
                        summary.append({**tag, "step": st, "lambda_max": 1.0 / v})
                    for split, acc, loss in (("train", 0.9 + v / 10, 0.1), ("test", 0.8, 0.1 + v)):
                        train.append(
                            {
                                **tag,
                                "step": STEPS[-1],
                                "source": "eval",
                                "split": split,
                                "accuracy": acc,
                                "loss": loss,
                            }
                        )
                        train.append(
                            {**tag, "step": 0, "source": "eval", "split": split, "accuracy": 0.1, "loss": 2.3}
                        )
    frames = {
        "noise": pd.DataFrame(noise),
        "noise_gamma": pd.DataFrame(gamma),
        "summary": pd.DataFrame(summary),
    }
    return SweepTables(runs, pd.DataFrame(train), frames, {}, {})


def _options() -> FigureOptions:
    return FigureOptions(groups=GROUPS, colors=group_colors(GROUPS), log_x=True)


def test_curves_are_means_over_seeds_per_group_fraction_and_batch() -> None:
    data = agg.noise_series(_tables(), "overlap_covariance_hessian", 0.95)
    assert set(data["batch"]) == {"16", "full"} and set(data["fraction"]) == set(FRACTIONS)
    row = data[(data.group == "sgd") & (data.batch == "full") & (data.fraction == 0.5) & (data.step == 100)]
    expected = np.mean([_value(1, 1, 0.5, s, 100) for s in (0, 1)])
    assert float(row["mean"].iloc[0]) == pytest.approx(expected) and int(row["n"].iloc[0]) == 2
    gamma = agg.noise_series(_tables(), "gamma", 0.95)  # the fit over all parameters, not per tensor
    row = gamma[(gamma.group == "adam") & (gamma.batch == "16") & (gamma.fraction == 0.0) & (gamma.step == 0)]
    assert float(row["mean"].iloc[0]) == pytest.approx(1 + np.mean([_value(0, 0, 0.0, s, 0) for s in (0, 1)]))


def test_generalization_rows_use_the_last_checkpoint_and_final_evaluation_of_completed_runs() -> None:
    tables = _tables({"sgd,b=16,f=0.0,seed=0": "diverged"})
    data = agg.generalization_data(tables)
    assert len(data) == len(tables.runs) - 1 and "sgd,b=16,f=0.0,seed=0" not in set(data.run)
    row = data[data.run == "adam,b=None,f=0.5,seed=1"].iloc[0]
    v = _value(0, 1, 0.5, 1, 100)
    assert (
        row.step == 100
        and row.theta2_h_diagonal == pytest.approx(v)
        and row.lambda_max == pytest.approx(1 / v)
    )
    assert row.accuracy_gap == pytest.approx(0.1 + v / 10) and row.loss_gap == pytest.approx(v)
    assert row.batch == "full" and row.fraction == 0.5


def test_rank_correlations_are_one_for_monotone_and_minus_one_for_reversed_relations() -> None:
    corr = agg.rank_correlations(agg.generalization_data(_tables())).set_index(["group", "x", "y"])
    for g in GROUPS:
        assert corr.loc[(g, "theta2_h_diagonal", "accuracy_gap"), "spearman_rho"] == pytest.approx(1.0)
        assert corr.loc[(g, "theta2_h_diagonal", "loss_gap"), "spearman_rho"] == pytest.approx(1.0)
        assert corr.loc[(g, "lambda_max", "loss_gap"), "spearman_rho"] == pytest.approx(-1.0)
        assert corr.loc[(g, "lambda_max", "loss_gap"), "n"] == 8


def test_noise_figures_draw_one_panel_per_group_and_fraction_and_say_when_there_is_no_data() -> None:
    tables, o = _tables(), _options()
    for draw in (noise_overlap_figure, noise_gamma_figure, noise_trace_ratio_figure):
        result = draw(tables, o)
        titles = {ax.get_title() for ax in result.figure.axes}
        assert titles == {f"{g}, random labels {f:g}" for g in GROUPS for f in FRACTIONS}
        assert not result.data.empty
    scatter = noise_generalization_figure(tables, o)
    assert len(scatter.figure.axes) == 4 and set(scatter.data["kind"]) == {"run", "spearman"}
    legend = [t.get_text() for t in scatter.figure.axes[0].get_legend().get_texts()]
    assert legend[0].startswith("adam: ρ = 1.00 (n = 8)")
    empty = SweepTables(tables.runs, tables.train, {}, {}, {})
    for draw in (
        noise_overlap_figure,
        noise_gamma_figure,
        noise_trace_ratio_figure,
        noise_generalization_figure,
    ):
        assert draw(empty, o) is None
