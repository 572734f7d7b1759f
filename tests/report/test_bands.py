"""Bands stay in their metric's valid range; the CSV keeps the t-interval and the band as drawn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hessdyn.report.aggregate import seed_series
from hessdyn.report.bands import LOG_FLOOR, on_log_axis
from hessdyn.store import domain


def _two_seeds(metric_values: dict[str, tuple[float, float]]) -> pd.DataFrame:
    rows = [
        {"run": f"r{i}", "group": "g", "status": "completed", "step": 0, "metric": m, "value": v[i]}
        for m, v in metric_values.items()
        for i in (0, 1)
    ]
    return pd.DataFrame(rows)


def _series(values: tuple[float, float], metric: str) -> pd.Series:
    frame = _two_seeds({metric: values})
    return seed_series(frame, ["step"], "value", metric, 0.95).iloc[0]


@pytest.mark.parametrize(
    ("metric", "values", "low", "high"),
    [
        ("accuracy", (0.1, 0.9), 0.0, 1.0),
        ("subspace_overlap", (0.05, 0.95), 0.0, 1.0),
        ("grad_alignment", (0.01, 0.99), 0.0, 1.0),
        ("displacement_matched_plain", (0.1, 1.9), 0.0, 2.0),
        ("displacement_matched_cluster", (0.1, 1.9), 0.0, 2.0),
        ("overlap_matched_cluster", (0.05, 0.95), 0.0, 1.0),
        ("loss", (0.01, 2.0), 0.0, np.inf),
        ("ipr_normalized", (1.0, 30.0), 0.0, np.inf),
        ("crossings", (0.0, 4.0), 0.0, np.inf),
    ],
)
def test_two_seed_band_is_cut_to_the_metric_range(metric, values, low, high) -> None:
    row = _series(values, metric)
    assert row["lo"] < low or row["hi"] > high  # t = 12.7: the interval leaves the range
    assert row["lo"] == pytest.approx(row["mean"] - (row["hi"] - row["mean"]))  # interval kept as computed
    assert row["band_lo"] == max(row["lo"], low)
    assert row["band_hi"] == min(row["hi"], high)


def test_eigenvalue_band_is_cut_at_zero_only_when_every_seed_is_positive() -> None:
    positive = _series((0.5, 12.0), "eigenvalue")
    assert positive["lo"] < 0 and positive["band_lo"] == 0.0
    mixed = _series((-0.5, 12.0), "eigenvalue")  # a negative top eigenvalue is a result, not noise
    assert mixed["band_lo"] == mixed["lo"] < 0


def test_unknown_metric_is_not_cut() -> None:
    row = _series((-3.0, 5.0), "something_new")
    assert domain("something_new").low == -np.inf
    assert (row["band_lo"], row["band_hi"]) == (row["lo"], row["hi"])


def test_one_seed_has_no_band() -> None:
    frame = _two_seeds({"loss": (0.3, 0.3)}).iloc[:1]
    row = seed_series(frame, ["step"], "value", "loss", 0.95).iloc[0]
    assert row["n"] == 1 and np.isnan(row["band_lo"]) and np.isnan(row["band_hi"])


def test_log_axis_band_reaches_one_decade_below_the_mean() -> None:
    row = _series((0.01, 2.0), "loss")
    drawn = on_log_axis(pd.DataFrame([row])).iloc[0]
    assert drawn["band_lo"] == pytest.approx(LOG_FLOOR * row["mean"])
    assert drawn["band_hi"] == row["band_hi"] and drawn["lo"] == row["lo"]
    narrow = _series((1.0, 1.1), "loss")  # a band above the floor is drawn as it is
    assert on_log_axis(pd.DataFrame([narrow])).iloc[0]["band_lo"] == narrow["band_lo"]


def test_log_axis_only_touches_the_rows_on_that_axis() -> None:
    frame = seed_series(_two_seeds({"x": (0.01, 2.0)}), ["step"], "value", "loss", 0.95)
    frame = pd.concat([frame, frame.assign(metric="other")], ignore_index=True)
    drawn = on_log_axis(frame, frame["metric"] == "loss")
    assert drawn.loc[0, "band_lo"] > 0 and drawn.loc[1, "band_lo"] == frame.loc[1, "band_lo"]
