"""The valid range of each reported metric, and the band over seeds cut to it.

The t-interval of a mean over few seeds easily leaves a metric's valid range: with two seeds the 95%
quantile is t = 12.7, so an accuracy band can span −1..2 and a loss band reach below zero (on a log
axis: down to the axis bottom). Every aggregate frame keeps the interval as computed (``lo``, ``hi``)
and adds the band that is drawn (``band_lo``, ``band_hi``):

* fractions (accuracy, overlaps, alignment, mass shares) are cut to [0, 1], displacements to [0, 2],
  counts and densities to ≥ 0;
* positive quantities (losses, eigenvalues, traces, IPR, ratios of positive numbers) are cut at 0 where
  every seed's value is positive (an eigenvalue or a trace estimate may be negative; then nothing is cut);
* on a log axis the lower edge is drawn no lower than ``LOG_FLOOR`` times the mean (:func:`on_log_axis`),
  one decade below the line, instead of at the axis bottom.

Each metric's domain is registered with its table column (or as a derived metric) in
:mod:`hessdyn.store.registry`; :func:`hessdyn.store.domain` looks it up.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hessdyn.store import domain

LOG_FLOOR = 0.1  # lowest band edge on a log axis, as a fraction of the mean


def add_band(frame: pd.DataFrame, all_positive: pd.Series | np.ndarray | bool = False) -> pd.DataFrame:
    """``frame`` (columns ``metric, lo, hi``) with ``band_lo``/``band_hi``: ``lo``/``hi`` cut to the metric's
    domain. ``all_positive`` (per row): every value behind the row is > 0, which lets a positive metric's
    band be cut at 0."""
    out = frame.copy()
    lo = pd.to_numeric(out["lo"], errors="coerce").to_numpy(dtype=float).copy()
    hi = pd.to_numeric(out["hi"], errors="coerce").to_numpy(dtype=float).copy()
    positive = np.broadcast_to(np.asarray(all_positive, dtype=bool), lo.shape)
    metrics = out["metric"].astype(str).to_numpy()
    for metric in np.unique(metrics):
        d = domain(metric)
        rows = metrics == metric
        low = np.where(positive & rows, max(d.low, 0.0), d.low) if d.positive else np.full(lo.shape, d.low)
        with np.errstate(invalid="ignore"):
            lo[rows] = np.clip(lo[rows], low[rows], d.high)
            hi[rows] = np.clip(hi[rows], low[rows], d.high)
    out["band_lo"], out["band_hi"] = lo, hi
    return out


def on_log_axis(frame: pd.DataFrame, rows: pd.Series | None = None) -> pd.DataFrame:
    """The band of ``frame`` as drawn on a log axis: lower edge at least ``LOG_FLOOR`` · mean; no band where
    the mean is not positive. ``rows`` (a mask) limits this to the rows on that axis."""
    if frame.empty or "band_lo" not in frame.columns:
        return frame
    out = frame.copy()
    mask = np.ones(len(out), dtype=bool) if rows is None else np.asarray(rows, dtype=bool)
    mean = pd.to_numeric(out["mean"], errors="coerce").to_numpy(dtype=float)
    lo = out["band_lo"].to_numpy(dtype=float).copy()
    hi = out["band_hi"].to_numpy(dtype=float).copy()
    with np.errstate(invalid="ignore"):
        drawable = mask & (mean > 0)
        lo[drawable] = np.maximum(lo[drawable], LOG_FLOOR * mean[drawable])  # NaN (no band) stays NaN
        lo[mask & ~drawable] = np.nan
        hi[mask & ~drawable] = np.nan
    out["band_lo"], out["band_hi"] = lo, hi
    return out
