"""The report's figure of the training-time probe (metrics/sharpness.csv): its numbers against a direct
computation from the fake tables, the unconverged pair left out, and no figure without a probe."""

from __future__ import annotations

import pandas as pd
import pytest

from hessdyn.report.figures.curvature import sharpness_figure
from hessdyn.report.runs import discover_runs
from hessdyn.report.style import FigureOptions, group_colors
from hessdyn.report.tables import load_tables

from .fake_runs import OPTIMIZERS, STEPS, make_sweep, opt_index, probe_lambda_at


@pytest.fixture(scope="module")
def tables(clean_sweep):
    return load_tables(discover_runs(str(clean_sweep), [], "optimizer"))


def _options() -> FigureOptions:
    groups = ("adam", "sgd")
    return FigureOptions(groups=groups, colors=group_colors(groups))


def _series(data: pd.DataFrame, group: str, metric: str) -> pd.Series:
    rows = data[(data["group"] == group) & (data["metric"] == metric) & (data["run"].fillna("") == "")]
    return rows.set_index("step")["mean"].sort_index()


def test_probe_series_are_means_over_seeds_of_rank_1_converged_rows(tables) -> None:
    result = sharpness_figure(tables, _options())
    assert result is not None and result.name == "sharpness"
    data = result.data
    steps = list(range(0, STEPS[-1] + 1, 2))
    for group in ("sgd", "adam"):
        o = opt_index(group)
        lam = _series(data, group, "lambda_max")
        assert list(lam.index) == steps
        for step in steps:  # seed 1's rank-1 pair at step 4 did not converge: seed 0 alone there
            seeds = [0] if step == 4 else [0, 1]
            expected = sum(probe_lambda_at(step, o, seed) for seed in seeds) / len(seeds)
            assert lam[step] == pytest.approx(expected, rel=1e-12)
    lr = OPTIMIZERS["sgd"]["lr"]
    assert _series(data, "sgd", "stability_threshold").tolist() == pytest.approx([2 / lr] * len(steps))
    ratio = _series(data, "sgd", "stability_ratio")
    assert ratio[10] == pytest.approx(_series(data, "sgd", "lambda_max")[10] * lr / 2, rel=1e-12)
    beta, lr = OPTIMIZERS["adam"]["beta1"], OPTIMIZERS["adam"]["lr"]
    pre = _series(data, "adam", "precond_lambda_max")
    assert list(pre.index) == steps[1:]  # Adam has no preconditioner at step 0
    assert pre[10] == pytest.approx(300.0 + 10 + 5, rel=1e-12)  # seeds 0 and 1: 310 and 320
    threshold = (2 + 2 * beta) / ((1 - beta) * lr)
    assert _series(data, "adam", "stability_ratio")[10] == pytest.approx(315.0 / threshold, rel=1e-12)
    assert "stability_threshold" not in set(data[data["group"] == "adam"]["metric"])  # no claim on raw H
    assert any("did not converge (sharpness.csv)" in w for w in tables.warnings)
    left, right = result.figure.axes[:2]
    assert "threshold" in right.get_ylabel() and any(line.get_ydata()[0] == 1.0 for line in right.get_lines())
    assert "metrics/sharpness.csv" in result.caption


def test_no_probe_no_figure(tmp_path) -> None:
    make_sweep(tmp_path / "sweep", analyzed=False)
    tables = load_tables(discover_runs(str(tmp_path / "sweep"), [], "optimizer"))
    assert tables.table("sharpness").empty
    assert sharpness_figure(tables, _options()) is None
