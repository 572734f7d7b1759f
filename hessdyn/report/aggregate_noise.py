"""Aggregation of the noise group's tables (noise.csv, noise_gamma.csv) for the report.

Sweeps of noise experiments vary the training batch size and the random-label fraction inside each report
group, so the curves over training are split by both: ``fraction`` (``dataset.random_label_fraction``; 0 when
a run's config lacks it) and ``batch`` (``trainer.batch_size``, ``full`` for full batch), each a mean over seeds
with its t-band (:func:`hessdyn.report.aggregate.seed_series`). The generalization scatter has one point per
completed run and Spearman's rank correlation per report group.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from hessdyn.report.aggregate import _last, seed_series
from hessdyn.report.runs import RunInfo
from hessdyn.report.tables import SweepTables, has_values
from hessdyn.store import RunStatus

FRACTION_KEY = "dataset.random_label_fraction"
BATCH_KEY = "trainer.batch_size"
FULL_BATCH = "full"
# the scatter's x measures (noise.csv / summary.csv at the last analyzed step) and y gaps (final evaluation)
MEASURES = ("theta2_h_diagonal", "lambda_max")
GAPS = ("accuracy_gap", "loss_gap")


def batch_label(value: Any) -> str:
    """``16``, ``256`` or ``full`` (null batch size)."""
    return (
        FULL_BATCH if value is None or (isinstance(value, float) and math.isnan(value)) else f"{int(value)}"
    )


def batch_order(label: str) -> float:
    return math.inf if label == FULL_BATCH else float(label)


def _facets(runs: list[RunInfo]) -> pd.DataFrame:
    """run -> fraction (float), batch (label) from each run's config."""
    return pd.DataFrame(
        [
            {
                "run": r.name,
                "fraction": float(r.config.get(FRACTION_KEY) or 0.0),
                "batch": batch_label(r.config.get(BATCH_KEY)),
            }
            for r in runs
        ],
        columns=["run", "fraction", "batch"],
    )


def noise_series(tables: SweepTables, value: str, level: float) -> pd.DataFrame:
    """``value`` of noise.csv (or γ of noise_gamma.csv's ``param = all`` rows, for value ``gamma``) against
    step, per group, fraction and batch size: mean over seeds and band (columns of ``seed_series``)."""
    frame = tables.table("noise_gamma") if value == "gamma" else tables.table("noise")
    if value == "gamma" and "param" in frame.columns:
        frame = frame[frame["param"] == "all"]
    if not has_values(frame, value):
        return pd.DataFrame()
    frame = frame.merge(_facets(tables.runs), on="run", how="left")
    return seed_series(frame, ["fraction", "batch", "step"], value, value, level)


def _final_eval(train: pd.DataFrame) -> pd.DataFrame:
    """Per run: final train/test loss and accuracy (last evaluation of each split)."""
    if train.empty or not {"source", "split"} <= set(train.columns):
        return pd.DataFrame(columns=["run"])
    evals = train[train["source"] == "eval"]
    parts = []
    for split in ("train", "test"):
        rows = evals[evals["split"] == split]
        for value in ("loss", "accuracy"):
            last = _last(rows, value)[["run", value]].rename(columns={value: f"{split}_{value}"})
            parts.append(last.drop_duplicates("run").set_index("run"))
    return pd.concat(parts, axis=1).reset_index() if parts else pd.DataFrame(columns=["run"])


def generalization_data(tables: SweepTables) -> pd.DataFrame:
    """One row per completed run: final accuracy gap (train − test) and loss gap (test − train), and
    Σθ_i²H_ii, θᵀHθ and λmax at the last analyzed checkpoint; with its group, fraction and batch size."""
    noise, summary = tables.table("noise"), tables.table("summary")
    if not has_values(noise, "theta2_h_diagonal"):
        return pd.DataFrame()
    measures = _last(noise, "theta2_h_diagonal")[["run", "step", "theta2_h_diagonal", "theta_h_theta"]]
    if has_values(summary, "lambda_max"):
        measures = measures.merge(summary[["run", "step", "lambda_max"]], on=["run", "step"], how="left")
    out = measures.merge(_final_eval(tables.train), on="run", how="inner")
    out = out.merge(_facets(tables.runs), on="run", how="left")
    info = {r.name: r for r in tables.runs}
    out["group"] = out["run"].map(lambda name: info[name].group)
    out["status"] = out["run"].map(lambda name: info[name].status)
    out = out[out["status"] == RunStatus.COMPLETED.value]
    out["accuracy_gap"] = out["train_accuracy"] - out["test_accuracy"]
    out["loss_gap"] = out["test_loss"] - out["train_loss"]
    return out.reset_index(drop=True)


def rank_correlations(data: pd.DataFrame) -> pd.DataFrame:
    """Spearman's ρ (and its two-sided p-value) of every gap against every measure, per group."""
    rows = []
    for group, runs in data.groupby("group", sort=False):
        for y in GAPS:
            for x in MEASURES:
                if x not in runs.columns:
                    continue
                pair = runs[[x, y]].astype(float).replace([np.inf, -np.inf], np.nan).dropna()
                rho, p = (math.nan, math.nan)
                if len(pair) >= 3 and pair[x].nunique() > 1 and pair[y].nunique() > 1:
                    result = stats.spearmanr(pair[x], pair[y])
                    rho, p = float(result.statistic), float(result.pvalue)
                rows.append(
                    {"group": group, "x": x, "y": y, "spearman_rho": rho, "p_value": p, "n": len(pair)}
                )
    return pd.DataFrame(rows, columns=["group", "x", "y", "spearman_rho", "p_value", "n"])
