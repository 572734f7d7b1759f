"""Aggregation over seeds: tidy frames of mean, spread and confidence band per group.

The band is a two-sided t-interval for the mean over seeds, ``mean ± t_{(1+level)/2, n-1} · sd / sqrt(n)``
with the sample standard deviation ``sd`` (ddof=1) of the ``n`` runs that have a finite value; with one
run there is no band (``sd``, ``lo``, ``hi`` are NaN). ``band_lo``/``band_hi`` are that interval cut to the
metric's valid range (:mod:`hessdyn.report.bands`): what the figures draw. Runs that diverged or failed (and runs without a
``run.json``) do not enter means; :func:`seed_series` returns their values as rows of their own, with
``run`` set, so figures can draw them individually.

Every frame returned here has the columns ``group, <keys...>, metric, mean, sd, lo, hi, band_lo, band_hi,
n, run``
(``run`` empty for aggregates); these are the CSV files beside the figures.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.special import stdtrit

from hessdyn.report.bands import add_band
from hessdyn.report.tables import SweepTables, converged, has_values
from hessdyn.store import IN_MEANS, RunStatus

STATS = ["mean", "sd", "lo", "hi", "band_lo", "band_hi", "n"]


def t_band(values: Sequence[float] | np.ndarray, level: float) -> tuple[float, float, float, float, int]:
    """``(mean, sd, lo, hi, n)`` of the finite ``values``; the band is the t-interval at ``level``."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = int(x.shape[0])
    if n == 0:
        return np.nan, np.nan, np.nan, np.nan, 0
    mean = float(x.mean())
    if n == 1:
        return mean, np.nan, np.nan, np.nan, 1
    sd = float(x.std(ddof=1))
    half = float(stdtrit(n - 1, 0.5 + level / 2.0)) * sd / np.sqrt(n)  # t quantile
    return mean, sd, mean - half, mean + half, n


def empty(keys: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame(columns=["group", *keys, "metric", *STATS, "run"])


def per_run(frame: pd.DataFrame, keys: Sequence[str], value: str) -> pd.DataFrame:
    """One value per run and key combination: the mean of the finite values of ``value`` (e.g. over ranks)."""
    cols = ["run", "group", "status", *keys]
    sub = frame[cols + [value]].copy()
    sub[value] = pd.to_numeric(sub[value], errors="coerce").replace([np.inf, -np.inf], np.nan)
    sub = sub.dropna(subset=[value, *keys])
    return sub.groupby(cols, sort=True, dropna=False)[value].mean().reset_index()


def seed_series(
    frame: pd.DataFrame, keys: Sequence[str], value: str, metric: str, level: float, individual: bool = True
) -> pd.DataFrame:
    """Mean and band over the runs of each group at each key combination (e.g. ``step``, ``rank``).

    ``frame`` holds rows of many runs (columns ``run, group, status``, ``keys`` and ``value``); rows of one
    run sharing a key combination are averaged first. Runs outside the means (diverged, failed) come back
    as rows with ``run`` set, ``mean`` = their value and ``n`` = 1, unless ``individual`` is False.
    """
    keys = list(keys)
    if frame.empty or value not in frame.columns or any(k not in frame.columns for k in keys):
        return empty(keys)
    runs = per_run(frame, keys, value)
    if runs.empty:
        return empty(keys)
    inside = runs[runs["status"].isin(IN_MEANS)]
    grouped = inside.groupby(["group", *keys], sort=True)[value]
    out = grouped.agg(mean="mean", sd="std", n="count", smallest="min").reset_index()
    n = out["n"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        half = stdtrit(np.maximum(n - 1, 1), 0.5 + level / 2.0) * out["sd"].to_numpy() / np.sqrt(n)
    half[n < 2] = np.nan  # one seed: no band (pandas gives sd = NaN there too)
    out["lo"], out["hi"] = out["mean"] - half, out["mean"] + half
    out["metric"], out["run"] = metric, ""
    frames = [add_band(out, out["smallest"] > 0)]
    if individual:
        outside = runs[~runs["status"].isin(IN_MEANS)]
        frames.append(
            outside.assign(
                metric=metric,
                mean=outside[value],
                sd=np.nan,
                lo=np.nan,
                hi=np.nan,
                band_lo=np.nan,
                band_hi=np.nan,
                n=1,
            )[["group", *keys, "metric", *STATS, "run"]]
        )
    frames = [f for f in frames if not f.empty]
    if not frames:
        return empty(keys)
    return pd.concat(frames, ignore_index=True)[["group", *keys, "metric", *STATS, "run"]]


def combine(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame(columns=["group", "metric", *STATS, "run"])
    out = pd.concat(frames, ignore_index=True, sort=False)
    stat_cols = ["metric", *STATS, "run"]
    return out[[c for c in out.columns if c not in stat_cols] + stat_cols]


def leading(frame: pd.DataFrame, ranks: int) -> pd.DataFrame:
    """Rows of the ``ranks`` leading eigenvectors: ranks 1..``ranks`` (ranks are 1-based in every table)."""
    if "rank" not in frame.columns or frame.empty:
        return frame
    rank = pd.to_numeric(frame["rank"], errors="coerce")
    return frame[(rank >= 1) & (rank <= ranks)]


def leading_ranks(frame: pd.DataFrame, ranks: int) -> list[int]:
    """The ranks :func:`leading` keeps (fewer than ``ranks`` when the analysis computed fewer)."""
    rows = leading(frame, ranks)
    if rows.empty or "rank" not in rows.columns:
        return []
    return sorted(int(r) for r in pd.to_numeric(rows["rank"], errors="coerce").dropna().unique())


# ------------------------------------------------------------------------------------------ training
def training_data(tables: SweepTables, level: float, batch: bool = True) -> pd.DataFrame:
    """Loss (mean cross-entropy, nats) and accuracy (fraction) per ``split`` and ``source``.

    ``source=eval`` rows evaluate the whole split; ``source=batch`` rows are the running mean over the
    minibatches since the previous row (train split only).
    """
    train = tables.train
    if train.empty or "source" not in train.columns or "split" not in train.columns:
        return empty(["step", "split", "source"])
    sources = ["eval", "batch"] if batch else ["eval"]
    train = train[train["source"].isin(sources)]
    return combine(
        [seed_series(train, ["step", "split", "source"], m, m, level) for m in ("loss", "accuracy")]
    )


# --------------------------------------------------------------------------------------- curvature
def _top_spectrum(tables: SweepTables) -> pd.DataFrame:
    """Converged top eigenpairs (an unconverged eigenvalue is not a result; tables.py warns about them)."""
    spectrum = tables.table("spectrum")
    if "which" in spectrum.columns:
        spectrum = spectrum[spectrum["which"].fillna("top") == "top"]
    return spectrum[converged(spectrum)]


def _trained_rows(summary: pd.DataFrame) -> pd.Series:
    """Rows whose stability columns are of the loss as trained, not of the analysis' Hessian
    (``lambda_max_trained`` recorded: batch-norm nets, see summary.csv ``stability_mode``)."""
    if "lambda_max_trained" not in summary.columns:
        return pd.Series(False, index=summary.index)
    return pd.to_numeric(summary["lambda_max_trained"], errors="coerce").notna()


def batch_statistics_groups(tables: SweepTables) -> list[str]:
    """Groups with a run whose stability λmax is of the batch-statistics Hessian (``lambda_max_trained``)."""
    summary = tables.table("summary")
    return sorted(summary.loc[_trained_rows(summary), "group"].unique()) if not summary.empty else []


def eigenvalue_data(tables: SweepTables, ranks: int, level: float) -> pd.DataFrame:
    """Top eigenvalues (loss-Hessian units, the analysis' Hessian mode) of ranks 1..``ranks`` per step, plus
    ``summary.csv``'s ``stability_threshold`` (2/η for SGD, (2 + 2β)/η with momentum; empty for adaptive
    optimizers) of the runs whose stability λmax is this spectrum's (not of batch-norm nets, whose λmax as
    trained is another Hessian's: see :func:`stability_data`)."""
    spectrum = leading(_top_spectrum(tables), ranks)
    frames = [seed_series(spectrum, ["step", "rank"], "eigenvalue", "eigenvalue", level)]
    summary = tables.table("summary")
    summary = summary[~_trained_rows(summary)]
    frames.append(
        seed_series(summary, ["step"], "stability_threshold", "stability_threshold", level, individual=False)
    )
    return combine(frames)


def stability_data(tables: SweepTables, level: float) -> pd.DataFrame:
    """The sharpness of the loss as trained against the optimizer's threshold, and ``stability_ratio`` =
    value / threshold per run and step (η·λmax/2 for SGD; 1 = the stability edge): λmax against
    ``stability_threshold`` (SGD, momentum): ``lambda_max`` (the analysis' Hessian) or, for batch-norm nets,
    ``lambda_max_trained`` (batch statistics over batches of the training batch size); Adam's
    ``precond_lambda_max`` (of that same Hessian) against (2 + 2β1)/((1 − β1)η)."""
    summary = tables.table("summary").copy()
    if summary.empty:
        return empty(["step"])
    frames = []
    has_sgd = has_values(summary, "stability_threshold") and "lambda_max" in summary.columns
    has_adam = has_values(summary, "precond_threshold") and "precond_lambda_max" in summary.columns
    ratio = pd.Series(np.nan, index=summary.index)
    trained = _trained_rows(summary)
    if has_sgd:
        applies = pd.to_numeric(summary["stability_threshold"], errors="coerce").notna()
        frames += [
            seed_series(summary[applies & ~trained], ["step"], "lambda_max", "lambda_max", level),
            seed_series(
                summary[applies & trained], ["step"], "lambda_max_trained", "lambda_max_trained", level
            ),
            seed_series(summary[applies], ["step"], "stability_threshold", "stability_threshold", level),
        ]
        sharpness = summary["lambda_max"].where(~trained, summary.get("lambda_max_trained"))
        ratio = sharpness / summary["stability_threshold"]
    if has_adam:
        frames += [
            seed_series(summary, ["step"], c, c, level) for c in ("precond_lambda_max", "precond_threshold")
        ]
        ratio = ratio.fillna(summary["precond_lambda_max"] / summary["precond_threshold"])
    summary["stability_ratio"] = ratio
    frames.append(seed_series(summary, ["step"], "stability_ratio", "stability_ratio", level))
    return combine(frames)


def sharpness_data(tables: SweepTables, level: float) -> pd.DataFrame:
    """The metrics of :func:`stability_data` at every probed step, from the training-time probe
    (``metrics/sharpness.csv``; rank 1, converged rows): ``lambda_max`` of the Hessian with
    ``stability_threshold`` where the optimizer has one on it (SGD, momentum), ``precond_lambda_max`` with
    ``precond_threshold`` (Adam, RMSprop), and ``stability_ratio`` = value / threshold per run and step."""
    probe = tables.table("sharpness")
    if probe.empty or not {"operator", "rank", "eigenvalue", "threshold"} <= set(probe.columns):
        return empty(["step"])
    probe = probe[(pd.to_numeric(probe["rank"], errors="coerce") == 1) & converged(probe)]
    frames, ratios = [], []
    for operator, value, threshold in (
        ("hessian", "lambda_max", "stability_threshold"),
        ("preconditioned", "precond_lambda_max", "precond_threshold"),
    ):
        rows = probe[probe["operator"] == operator].rename(
            columns={"eigenvalue": value, "threshold": threshold}
        )
        if rows.empty:
            continue
        frames.append(seed_series(rows, ["step"], value, value, level))
        if has_values(rows, threshold):
            frames.append(seed_series(rows, ["step"], threshold, threshold, level))
            applies = rows[pd.to_numeric(rows[threshold], errors="coerce").notna()]
            ratios.append(applies.assign(stability_ratio=applies[value] / applies[threshold]))
    if ratios:
        ratio = pd.concat(ratios, ignore_index=True)
        frames.append(seed_series(ratio, ["step"], "stability_ratio", "stability_ratio", level))
    return combine(frames)


WS_METRICS = (
    "lambda_max",
    "ws_bound",
    "ws_bound_se",
    "lambda_max_over_ws",
    "ws_bound_exact",
    "lambda_max_over_ws_exact",
)


def ws_data(tables: SweepTables, level: float) -> pd.DataFrame:
    """λmax beside its Wolkowicz–Styan upper bound: estimated from Hutch++ traces (with the estimator's
    standard error, if any) and, for three_layer runs, exact (closed-form traces); the ratios λmax / bound
    (≤ 1 up to estimation error)."""
    summary = tables.table("summary").copy()
    if (
        not has_values(summary, "lambda_max_over_ws")
        and has_values(summary, "ws_bound")
        and "lambda_max" in summary.columns
    ):
        summary["lambda_max_over_ws"] = summary["lambda_max"] / summary["ws_bound"]
    return combine([seed_series(summary, ["step"], c, c, level) for c in WS_METRICS])


def spectral_range_data(tables: SweepTables, level: float) -> pd.DataFrame:
    """``spectral_range`` = λmax − λmin per run and step (summary.csv; λmin from the bottom group or the
    dense path), and λmin itself (negative: negative curvature)."""
    summary = tables.table("summary").copy()
    if not (has_values(summary, "lambda_min") and has_values(summary, "lambda_max")):
        return empty(["step"])
    summary["spectral_range"] = summary["lambda_max"] - summary["lambda_min"]
    return combine([seed_series(summary, ["step"], c, c, level) for c in ("spectral_range", "lambda_min")])


def gap_data(tables: SweepTables, level: float) -> pd.DataFrame:
    """Generalization gap per run and evaluated step: ``loss_gap`` = test − train loss and ``accuracy_gap``
    = train − test accuracy, both over the whole splits (metrics/train.csv rows with source=eval)."""
    wide = _eval_wide(tables)
    if wide.empty:
        return empty(["step"])
    wide["loss_gap"] = wide["loss_test"] - wide["loss_train"]
    wide["accuracy_gap"] = wide["accuracy_train"] - wide["accuracy_test"]
    return combine([seed_series(wide, ["step"], c, c, level) for c in ("loss_gap", "accuracy_gap")])


def _eval_wide(tables: SweepTables) -> pd.DataFrame:
    """One row per run and evaluated step with ``loss_train, loss_test, accuracy_train, accuracy_test``."""
    train = tables.train
    if train.empty or not {"source", "split", "loss", "accuracy"} <= set(train.columns):
        return pd.DataFrame()
    evals = train[train["source"] == "eval"]
    keys = ["run", "group", "status", "step"]
    parts = [
        evals[evals["split"] == split][[*keys, "loss", "accuracy"]].rename(
            columns={"loss": f"loss_{split}", "accuracy": f"accuracy_{split}"}
        )
        for split in ("train", "test")
    ]
    return parts[0].merge(parts[1], on=keys, how="inner")


def trace_data(tables: SweepTables, level: float) -> pd.DataFrame:
    """Hutch++ estimate of tr(H) per step (sum of all eigenvalues, loss-Hessian units) and its estimator
    standard error ``trace_se`` (mean over seeds), where the analysis recorded it."""
    summary = tables.table("summary")
    return combine([seed_series(summary, ["step"], c, c, level) for c in ("trace", "trace_se")])


def alignment_data(tables: SweepTables, level: float) -> pd.DataFrame:
    """Fraction ``||P g||² / ||g||²`` of the full-batch gradient at each checkpoint and of the parameter
    change since the previous checkpoint (at the later step) in the top-k eigenspace, plus
    ``random_alignment`` (no step) per group: the expectation ``k/P`` for a random direction
    (:func:`random_alignment`)."""
    summary = tables.table("summary")
    frames = [seed_series(summary, ["step"], c, c, level) for c in ("grad_alignment", "update_alignment")]
    if any(not f.empty for f in frames):
        frames.append(random_alignment(tables))
    return combine(frames)


def random_alignment(tables: SweepTables) -> pd.DataFrame:
    """``k/P`` per group: the mean of ``||P g||² / ||g||²`` over uniformly random directions ``g`` for a
    k-dimensional subspace of R^P, with ``k`` = ``settings.top_k`` and ``P`` = ``num_params`` of each run's
    analysis.json; mean over the group's analyzed runs in means (``n`` runs)."""
    rows = []
    for run in tables.runs:
        meta = tables.analysis_json.get(run.name) or {}
        k, size = (meta.get("settings") or {}).get("top_k"), meta.get("num_params")
        if run.in_means and isinstance(k, (int, float)) and isinstance(size, (int, float)) and size > 0:
            rows.append({"group": run.group, "k_over_p": min(k, size) / size})
    if not rows:
        return empty([])
    frame = pd.DataFrame(rows).groupby("group", sort=True)["k_over_p"]
    out = frame.agg(mean="mean", sd="std", n="count").reset_index()
    # a reference value, not an estimate: no band
    out = out.assign(metric="random_alignment", lo=np.nan, hi=np.nan, band_lo=np.nan, band_hi=np.nan, run="")
    return out[["group", "metric", *STATS, "run"]]


# -------------------------------------------------------------------------------------- trajectory
def _pairs(tables: SweepTables, metric: str) -> pd.DataFrame:
    traj = tables.table("trajectory")
    if traj.empty or "metric" not in traj.columns:
        return traj.iloc[0:0]
    return traj[traj["metric"] == metric]


def _run_steps(tables: SweepTables) -> dict[str, np.ndarray]:
    """Analyzed checkpoint steps of each run (from the trajectory table's pairs)."""
    traj = tables.table("trajectory")
    out: dict[str, np.ndarray] = {}
    if traj.empty or "step_a" not in traj.columns:
        return out
    for run, part in traj.groupby("run"):
        out[str(run)] = np.unique(np.concatenate([part["step_a"].dropna(), part["step_b"].dropna()]))
    return out


def consecutive(tables: SweepTables, frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``frame`` whose ``(step_a, step_b)`` are consecutive analyzed checkpoints of their run."""
    steps = _run_steps(tables)
    keep = [(run, a, b) for run, s in steps.items() for a, b in zip(s[:-1], s[1:], strict=True)]
    if not keep or frame.empty:
        return frame.iloc[0:0]
    pairs = pd.DataFrame(keep, columns=["run", "step_a", "step_b"])
    return frame.merge(pairs, on=["run", "step_a", "step_b"], how="inner")


# trajectory.csv displacements the report draws, in panel order (hessdyn.trajectory.matching)
DISPLACEMENTS = ("displacement_matched_plain", "displacement_matched_cluster", "displacement_ranked")


def displacement_data(tables: SweepTables, ranks: int, level: float) -> pd.DataFrame:
    """Eigenvector displacement ``2(1 − |overlap|)`` between consecutive checkpoints, averaged over ranks
    1..``ranks``, at the later checkpoint ``step_b``: plain Hungarian matched, cluster-aware matched and
    rank by rank (:data:`DISPLACEMENTS`)."""
    frames = []
    for metric in DISPLACEMENTS:
        rows = leading(consecutive(tables, _pairs(tables, metric)), ranks)
        frames.append(seed_series(rows.rename(columns={"step_b": "step"}), ["step"], "value", metric, level))
    return combine(frames)


def endpoint_overlap_data(tables: SweepTables, level: float) -> pd.DataFrame:
    """Subspace overlap of each checkpoint's top-k space with the first (``with=first``, at ``step_b``)
    and the last checkpoint (``with=last``, at ``step_a``)."""
    pairs = _pairs(tables, "subspace_overlap")
    steps = _run_steps(tables)
    if pairs.empty or not steps:
        return empty(["with", "step"])
    first = pairs[pairs["step_a"] == pairs["run"].map(lambda r: steps[r][0])]
    last = pairs[pairs["step_b"] == pairs["run"].map(lambda r: steps[r][-1])]
    a = seed_series(
        first.rename(columns={"step_b": "step"}).assign(**{"with": "first"}),
        ["with", "step"],
        "value",
        "subspace_overlap",
        level,
    )
    b = seed_series(
        last.rename(columns={"step_a": "step"}).assign(**{"with": "last"}),
        ["with", "step"],
        "value",
        "subspace_overlap",
        level,
    )
    return combine([a, b])


def two_time_data(tables: SweepTables, level: float) -> pd.DataFrame:
    """``C(t_w, t_w + τ)``: subspace overlap of the top-k spaces at ``t_w`` and ``t = t_w + τ`` (all pairs,
    mean over the seeds in means; 1 = same subspace)."""
    pairs = _pairs(tables, "subspace_overlap")
    if pairs.empty:
        return empty(["t_w", "t", "tau"])
    pairs = pairs.rename(columns={"step_a": "t_w", "step_b": "t"})
    pairs = pairs.assign(tau=pairs["t"] - pairs["t_w"])
    return combine(
        [seed_series(pairs, ["t_w", "t", "tau"], "value", "subspace_overlap", level, individual=False)]
    )


EVENT_KINDS = {"crossing": "crossings", "cluster": "clusters"}  # events.csv kind -> metric


def event_counts(tables: SweepTables) -> pd.DataFrame:
    """Events (events.csv) per run and consecutive pair of analyzed checkpoints (``step_a``, ``step_b``):
    ``crossings`` (a confidently matched eigenvector changed rank) and ``clusters`` (groups of
    near-degenerate eigenvalues compared as one subspace), column ``count``. A pair of a run with an
    events.csv but no row for it counts 0; runs without events.csv are left out."""
    columns = ["run", "group", "status", "step_a", "step_b", "metric", "count"]
    events = tables.table("events")
    if events.empty or "kind" not in events.columns:
        return pd.DataFrame(columns=columns)
    info = {r.name: r for r in tables.runs}
    counted = events.groupby(["run", "step_a", "step_b", "kind"]).size()
    rows = [
        (run, info[run].group, info[run].status, a, b, metric, int(counted.get((run, a, b, kind), 0)))
        for run, steps in _run_steps(tables).items()
        if run in tables.sources.get("events", set())
        for a, b in zip(steps[:-1], steps[1:], strict=True)
        for kind, metric in EVENT_KINDS.items()
    ]
    return pd.DataFrame(rows, columns=columns)


def events_data(tables: SweepTables, level: float) -> pd.DataFrame:
    """Mean and band over seeds of :func:`event_counts` per group and checkpoint pair."""
    counts = event_counts(tables)
    if counts.empty:
        return empty(["step_a", "step_b"])
    return combine(
        [
            seed_series(counts[counts["metric"] == m], ["step_a", "step_b"], "count", m, level)
            for m in EVENT_KINDS.values()
        ]
    )


# ------------------------------------------------------------------------------------ localization
def ipr_data(tables: SweepTables, ranks: int, level: float) -> pd.DataFrame:
    """Normalized IPR ``P·Σv⁴/3`` (≈ 1 for a random unit vector) of ranks 1..``ranks`` per step."""
    spectrum = leading(_top_spectrum(tables), ranks)
    return combine([seed_series(spectrum, ["step", "rank"], "ipr_normalized", "ipr_normalized", level)])


def null_band_data(tables: SweepTables, ranks: int) -> pd.DataFrame:
    """Null models of the normalized IPR per group and null (``random``, ``architecture``): mean and
    standard deviation over all null samples (seeds and ranks 1..``ranks``) of the group's runs;
    ``lo``/``hi`` = mean ∓ sd, ``n`` = number of samples."""
    nulls = tables.table("nulls")
    if not has_values(nulls, "ipr_normalized") or "null" not in nulls.columns:
        return empty(["null"])
    if has_values(nulls, "rank"):
        ranked = nulls["rank"].notna()
        nulls = pd.concat([leading(nulls[ranked], ranks), nulls[~ranked]])
    rows = []
    for (group, null), part in nulls.groupby(["group", "null"], sort=True):
        x = pd.to_numeric(part["ipr_normalized"], errors="coerce").to_numpy(dtype=float)
        x = x[np.isfinite(x)]
        if x.size == 0:
            continue
        sd = float(x.std(ddof=1)) if x.size > 1 else 0.0
        mean = float(x.mean())
        rows.append(
            (group, null, "ipr_normalized_null", mean, sd, mean - sd, mean + sd, bool((x > 0).all()), x.size)
        )
    frame = pd.DataFrame(
        rows, columns=["group", "null", "metric", "mean", "sd", "lo", "hi", "_positive", "n"]
    )
    out = add_band(frame, frame["_positive"].to_numpy(dtype=bool)).assign(run="")
    return out[["group", "null", "metric", *STATS, "run"]]


def layer_mass_data(tables: SweepTables, ranks: int, level: float, max_params: int = 9) -> pd.DataFrame:
    """Share of the leading eigenvectors' squared mass in each parameter tensor per step, averaged over
    ranks 1..``ranks`` and seeds (shares sum to 1 per group and step). Beyond ``max_params`` tensors
    per group the smallest are summed into ``other``."""
    mass = leading(tables.table("layer_mass"), ranks)
    if not has_values(mass, "mass") or "param" not in mass.columns:
        return empty(["step", "param"])
    mass = mass[mass["status"].isin(IN_MEANS)]
    if mass.empty:  # no run in the means (only diverged, failed, ... runs): nothing to average
        return empty(["step", "param"])
    order = {p: i for i, p in enumerate(dict.fromkeys(mass["param"]))}
    frames = []
    for _group, part in mass.groupby("group", sort=True):
        total = part.groupby("param")["mass"].mean()
        if len(total) > max_params:
            small = set(total.sort_values(ascending=False).index[max_params - 1 :])
            part = part.assign(param=part["param"].where(~part["param"].isin(small), "other"))
            # the "other" share of a run at a step is the sum of its small tensors' shares
            part = part.groupby(["run", "group", "status", "step", "rank", "param"], as_index=False)[
                "mass"
            ].sum()
        frames.append(seed_series(part, ["step", "param"], "mass", "mass", level, individual=False))
    out = combine(frames)
    out["_order"] = out["param"].map(lambda p: order.get(p, len(order)))
    return out.sort_values(["group", "step", "_order"]).drop(columns="_order").reset_index(drop=True)


# --------------------------------------------------------------------------------------- density
def density_data(tables: SweepTables, snapshots: int, level: float, grid_points: int = 200) -> pd.DataFrame:
    """Spectral density (SLQ, per unit eigenvalue) at up to ``snapshots`` checkpoints per group (first
    and last included, evenly spaced in between), each run interpolated on a common eigenvalue grid
    (density 0 outside its own grid) before the mean over seeds."""
    density = tables.table("density")
    if not has_values(density, "density") or snapshots == 0:
        return empty(["step", "eigenvalue"])
    density = density[density["status"].isin(IN_MEANS)].dropna(subset=["step", "eigenvalue", "density"])
    frames = []
    for group, part in density.groupby("group", sort=True):
        steps = np.unique(part["step"])
        pick = steps[
            np.unique(np.round(np.linspace(0, len(steps) - 1, min(snapshots, len(steps)))).astype(int))
        ]
        for step in pick:
            at = part[part["step"] == step]
            grid = np.linspace(at["eigenvalue"].min(), at["eigenvalue"].max(), grid_points)
            rows = []
            for run, r in at.groupby("run"):
                r = r.sort_values("eigenvalue")
                values = np.interp(grid, r["eigenvalue"], r["density"], left=0.0, right=0.0)
                rows.append(
                    pd.DataFrame(
                        {
                            "run": run,
                            "group": group,
                            "status": RunStatus.COMPLETED.value,
                            "step": step,
                            "eigenvalue": grid,
                            "density": values,
                        }
                    )
                )
            frames.append(
                seed_series(
                    pd.concat(rows), ["step", "eigenvalue"], "density", "density", level, individual=False
                )
            )
    return combine(frames)


# ---------------------------------------------------------------------------------------- reparam
REPARAM_METRICS = ("lambda_max", "trace", "eps_sharpness", "theta_h_theta", "scaled_lambda_max")


def reparam_data(tables: SweepTables, level: float) -> pd.DataFrame:
    """Sharpness measures of the α-rescaled (function-preserving) nets against α at each run's last
    analyzed step: λmax, tr H, ε-sharpness and the scale-invariant θᵀHθ and λmax(diag|θ| H diag|θ|).
    Only runs in means (a diverged run's last step is not comparable)."""
    reparam = tables.table("reparam")
    if not has_values(reparam, "alpha"):
        return empty(["alpha"])
    if "step" in reparam.columns:
        last = reparam.groupby("run")["step"].transform("max")
        reparam = reparam[reparam["step"] == last]
    return combine(
        [
            seed_series(reparam, ["alpha"], m, m, level, individual=False)
            for m in REPARAM_METRICS
            if has_values(reparam, m)
        ]
    )


# ---------------------------------------------------------------------------------------- summary
SUMMARY_METRICS: dict[str, str] = {
    "final_train_loss": "final train loss",
    "final_test_loss": "final test loss",
    "final_train_accuracy": "final train accuracy",
    "final_test_accuracy": "final test accuracy",
    "final_lambda_max": "final λmax",
    "final_lambda_max_over_ws": "final λmax / WS bound",
    "mean_displacement_plain": "mean displacement (matched, plain Hungarian)",
    "mean_displacement_cluster": "mean displacement (matched, cluster-aware)",
    "final_ws_bound_exact": "final exact WS bound",
    "final_spectral_range": "final λmax − λmin",
    "final_loss_gap": "final test − train loss",
    "final_ipr_normalized": "final normalized IPR",
}


def _last(frame: pd.DataFrame, value: str) -> pd.DataFrame:
    """Each run's value at its last step with a finite value."""
    if not has_values(frame, value):
        return frame.iloc[0:0]
    sub = frame.dropna(subset=[value])
    sub = sub[np.isfinite(pd.to_numeric(sub[value], errors="coerce"))]
    last = sub.groupby("run")["step"].transform("max")
    return sub[sub["step"] == last]


def summary_data(tables: SweepTables, ranks: int, level: float) -> pd.DataFrame:
    """Final metrics per group over its completed runs (columns ``group, metric, mean, sd, lo, hi, n``).

    Final = at each run's last evaluated / analyzed step; the displacements (plain and cluster-aware
    matched) are averaged over consecutive checkpoint pairs and ranks 1..``ranks``; the IPR over ranks 1..``ranks`` at the last analyzed step.
    """
    parts: list[pd.DataFrame] = []

    def add(frame: pd.DataFrame, value: str, metric: str) -> None:
        if frame.empty or value not in frame.columns:
            return
        done = frame[frame["status"] == RunStatus.COMPLETED.value].assign(_k=0)
        parts.append(seed_series(done, ["_k"], value, metric, level, individual=False).drop(columns="_k"))

    train = tables.train
    if not train.empty and {"source", "split"} <= set(train.columns):
        evals = train[train["source"] == "eval"]
        for split in ("train", "test"):
            rows = evals[evals["split"] == split]
            add(_last(rows, "loss"), "loss", f"final_{split}_loss")
            add(_last(rows, "accuracy"), "accuracy", f"final_{split}_accuracy")
    summary = tables.table("summary").copy()
    add(_last(summary, "lambda_max"), "lambda_max", "final_lambda_max")
    if not has_values(summary, "lambda_max_over_ws") and has_values(summary, "ws_bound"):
        summary["lambda_max_over_ws"] = summary["lambda_max"] / summary["ws_bound"]
    add(_last(summary, "lambda_max_over_ws"), "lambda_max_over_ws", "final_lambda_max_over_ws")
    add(_last(summary, "ws_bound_exact"), "ws_bound_exact", "final_ws_bound_exact")
    if has_values(summary, "lambda_min") and has_values(summary, "lambda_max"):
        summary["spectral_range"] = summary["lambda_max"] - summary["lambda_min"]
        add(_last(summary, "spectral_range"), "spectral_range", "final_spectral_range")
    wide = _eval_wide(tables)
    if not wide.empty:
        wide["loss_gap"] = wide["loss_test"] - wide["loss_train"]
        add(_last(wide, "loss_gap"), "loss_gap", "final_loss_gap")
    for kind in ("plain", "cluster"):
        disp = leading(consecutive(tables, _pairs(tables, f"displacement_matched_{kind}")), ranks)
        add(disp, "value", f"mean_displacement_{kind}")
    spectrum = leading(_top_spectrum(tables), ranks)
    if has_values(spectrum, "ipr_normalized"):
        last_step = spectrum.groupby("run")["step"].transform("max")
        add(spectrum[spectrum["step"] == last_step], "ipr_normalized", "final_ipr_normalized")
    out = combine(parts)
    if out.empty:
        return pd.DataFrame(columns=["group", "metric", *STATS])
    out["_m"] = out["metric"].map(list(SUMMARY_METRICS).index)
    return out.sort_values(["group", "_m"]).drop(columns=["_m", "run"]).reset_index(drop=True)
