"""Reading every run's tables (train.csv, the other metrics tables, the analysis tables) into one tidy frame
per table.

Each frame holds the file's own columns plus ``run`` (the run's display name), ``group``, ``seed`` and
``status``. Columns are read by name; a table or column a run lacks is simply absent (the analysis
stage may skip metric groups), and an unreadable file is reported as a warning, not an error.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hessdyn.report.runs import RunInfo
from hessdyn.store import RunDir, tables, text_columns

log = logging.getLogger("hessdyn")

# the registered analysis tables a report reads (top_params.csv is for people, not figures)
ANALYSIS_TABLES = tuple(t.name for t in tables(folder="analysis") if t.name != "top_params")
# the run's own tables besides train.csv (metrics/sharpness.csv of the training-time probe)
METRICS_TABLES = tuple(t.name for t in tables(folder="metrics") if t.name != "train")
_TEXT_COLUMNS = text_columns()
_META = ["run", "group", "seed", "status"]


@dataclass
class SweepTables:
    """All runs' tables, concatenated (empty frames where no run has the table)."""

    runs: list[RunInfo]
    train: pd.DataFrame
    analysis: dict[str, pd.DataFrame]  # table name (ANALYSIS_TABLES) -> frame
    analysis_json: dict[str, dict[str, Any]]  # run name -> analysis.json
    analyzed_steps: dict[str, int]  # run name -> number of analyzed checkpoints
    warnings: list[str] = field(default_factory=list)
    # table name -> runs whose file was read, also when it holds no rows (events.csv without events)
    sources: dict[str, set[str]] = field(default_factory=dict)
    metrics: dict[str, pd.DataFrame] = field(default_factory=dict)  # METRICS_TABLES name -> frame

    def table(self, name: str) -> pd.DataFrame:
        """An analysis table (ANALYSIS_TABLES) or a run's metrics table (METRICS_TABLES) of every run."""
        frames = self.metrics if name in METRICS_TABLES else self.analysis
        return frames.get(name, pd.DataFrame(columns=_META))


def has_values(frame: pd.DataFrame, column: str) -> bool:
    """Whether ``column`` exists and holds at least one finite number."""
    if column not in frame.columns or frame.empty:
        return False
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
    return bool(np.isfinite(values).any())


def converged(frame: pd.DataFrame) -> pd.Series:
    """Row mask of ``spectrum.csv``'s ``converged`` flag (True/true/1); all True without the column."""
    if "converged" not in frame.columns:
        return pd.Series(True, index=frame.index)
    text = frame["converged"].astype(str).str.strip().str.lower()
    return text.isin(["true", "1", "1.0"])


def read_csv(path: Path, warnings: list[str]) -> pd.DataFrame | None:
    """A tidy CSV with numeric columns as floats (no rows for a header alone); None when the file is
    missing or empty, None and a warning when it is unreadable."""
    if not path.is_file():
        return None
    try:
        frame = pd.read_csv(path, on_bad_lines="skip")
    except pd.errors.EmptyDataError:
        return None
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        warnings.append(f"cannot read {path} ({str(exc).splitlines()[0]}); left out")
        return None
    for column in frame.columns:
        if column not in _TEXT_COLUMNS:
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame


def _tag(frame: pd.DataFrame, run: RunInfo) -> pd.DataFrame:
    if "seed" in frame.columns:  # nulls.csv: the null model's own seed, not the training seed
        frame = frame.rename(columns={"seed": "null_seed"})
    frame.insert(0, "run", run.name)
    frame.insert(1, "group", run.group)
    frame.insert(2, "seed", run.seed)
    frame.insert(3, "status", run.status)
    return frame


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame(columns=_META)
    return pd.concat(frames, ignore_index=True, sort=False)


def load_tables(runs: list[RunInfo], analysis_name: str = "default") -> SweepTables:
    """Read ``metrics/train.csv`` and the analysis tables of every run."""
    warnings: list[str] = []
    train: list[pd.DataFrame] = []
    per_table: dict[str, list[pd.DataFrame]] = {name: [] for name in ANALYSIS_TABLES}
    per_metrics: dict[str, list[pd.DataFrame]] = {name: [] for name in METRICS_TABLES}
    settings: dict[str, dict[str, Any]] = {}
    analyzed: dict[str, int] = {}
    sources: dict[str, set[str]] = {name: set() for name in ANALYSIS_TABLES}
    for run in runs:
        run_dir = RunDir(run.path)
        frame = read_csv(run_dir.train_csv, warnings)
        if frame is not None and "step" in frame.columns:
            train.append(_tag(frame, run))
        for name in METRICS_TABLES:
            frame = read_csv(run_dir.metrics_table(name), warnings)
            if frame is not None and "step" in frame.columns:
                if not converged(frame).all():
                    bad = int((~converged(frame)).sum())
                    warnings.append(
                        f"{run.name}: {bad} of {len(frame)} probed eigenpairs did not converge ({name}.csv); "
                        "they are left out of the figures"
                    )
                per_metrics[name].append(_tag(frame, run))
        adir = run_dir.analysis(analysis_name)
        steps: set[float] = set()
        for name in ANALYSIS_TABLES:
            frame = read_csv(adir.table_path(name), warnings)
            if frame is None:
                continue
            if name == "spectrum" and not converged(frame).all():
                bad = int((~converged(frame)).sum())
                warnings.append(
                    f"{run.name}: {bad} of {len(frame)} eigenpairs did not converge (spectrum.csv); "
                    "they are left out of the figures"
                )
            per_table[name].append(_tag(frame, run))
            sources[name].add(run.name)
            if name in ("summary", "spectrum") and "step" in frame.columns:
                steps |= set(frame["step"].dropna().tolist())
        analyzed[run.name] = len(steps)
        meta = adir.meta_path
        if meta.is_file():
            try:
                settings[run.name] = json.loads(meta.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                warnings.append(f"cannot read {meta} ({exc}); its settings are left out")
    return SweepTables(
        runs=runs,
        train=_concat(train),
        analysis={name: _concat(frames) for name, frames in per_table.items()},
        analysis_json=settings,
        analyzed_steps=analyzed,
        warnings=warnings,
        sources=sources,
        metrics={name: _concat(frames) for name, frames in per_metrics.items()},
    )
