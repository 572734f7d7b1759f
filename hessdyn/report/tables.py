"""Reading every run's tables (train.csv, the other metrics tables, the analysis tables) into one tidy frame
per table.

Each frame holds the file's own columns plus ``run`` (the run's display name), ``group``, ``seed`` and
``status``. Columns are read by name; a table or column a run lacks is simply absent (the analysis
stage may skip metric groups), and an unreadable file is reported as a warning, not an error.
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hessdyn.report.runs import RunInfo
from hessdyn.store import DamagedFile, RunDir, RunStatus, table, tables, text_columns
from hessdyn.store.integrity import csv_rows, table_problem

RETRAIN_TODO = "rerun the run's hessdyn train command: it writes the lost rows again"

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
    # files that failed their checks (one line each: the file, what is wrong, what to do); left out
    problems: list[str] = field(default_factory=list)

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
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return None
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        warnings.append(f"cannot read {path} ({str(exc).splitlines()[0]}); left out")
        return None
    return _numeric(frame)


def _numeric(frame: pd.DataFrame) -> pd.DataFrame:
    for column in frame.columns:
        if column not in _TEXT_COLUMNS:
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame


def read_checked(
    path: Path, name: str, recorded: dict[str, Any] | None, problems: list[str], *, growing: bool = False
) -> pd.DataFrame | None:
    """The registered table ``name`` at ``path`` after its checks (:func:`hessdyn.store.integrity.table_problem`:
    header, partial last line, row widths, the rows and SHA-256 ``recorded`` when its writer finished);
    None when it is missing. A table that fails is left out and its problem, naming the file and what to
    do, appended to ``problems``. ``growing``: the table of a run still being written, whose partial last
    line is the row being written (left out, not a problem)."""
    if not path.is_file():
        return None
    columns = table(name).names
    problem = table_problem(path, columns, recorded, "run.json" if name == "train" else "analysis.json")
    if problem is not None and growing and problem.startswith("its last line is cut off"):
        problem = None
    if problem is not None:
        todo = "rerun hessdyn analyze on the run to rebuild it" if name != "train" else RETRAIN_TODO
        problems.append(f"{path} failed its check ({problem}): left out; {todo}")
        return None
    header, rows, _ = csv_rows(path)
    if not rows:
        return pd.DataFrame(columns=header)
    return _numeric(pd.read_csv(io.StringIO("\n".join([",".join(header)] + [_csv_line(r) for r in rows]))))


def _csv_line(row: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(row)
    return buffer.getvalue()


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
    """Read ``metrics/train.csv`` and the analysis tables of every run, each after its checks; a file that
    fails is left out and named in ``problems``."""
    warnings: list[str] = []
    problems: list[str] = [p for run in runs for p in run.problems]
    train: list[pd.DataFrame] = []
    per_table: dict[str, list[pd.DataFrame]] = {name: [] for name in ANALYSIS_TABLES}
    per_metrics: dict[str, list[pd.DataFrame]] = {name: [] for name in METRICS_TABLES}
    settings: dict[str, dict[str, Any]] = {}
    analyzed: dict[str, int] = {}
    sources: dict[str, set[str]] = {name: set() for name in ANALYSIS_TABLES}
    for run in runs:
        run_dir = RunDir(run.path)
        frame = _train_table(run, problems)
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
        try:
            meta = adir.read_meta()
        except DamagedFile as exc:
            problems.append(f"{exc}: the run's curvature is left out")
            continue
        recorded = (meta or {}).get("tables") if (meta or {}).get("status") == "complete" else None
        steps: set[float] = set()
        for name in ANALYSIS_TABLES:
            record = recorded.get(name) if isinstance(recorded, dict) else None
            frame = read_checked(adir.table_path(name), name, record, problems)
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
        if meta is not None:
            settings[run.name] = meta
    return SweepTables(
        runs=runs,
        train=_concat(train),
        analysis={name: _concat(frames) for name, frames in per_table.items()},
        analysis_json=settings,
        analyzed_steps=analyzed,
        warnings=warnings,
        sources=sources,
        metrics={name: _concat(frames) for name, frames in per_metrics.items()},
        problems=problems,
    )


def _train_table(run: RunInfo, problems: list[str]) -> pd.DataFrame | None:
    """``metrics/train.csv`` of ``run``, checked; a finished run's must hold the rows its run.json counted."""
    finished = RunStatus.parse(run.status).finished
    rows = run.record.get("metrics_rows") if finished else None
    recorded = {"rows": rows} if rows is not None else None
    return read_checked(RunDir(run.path).train_csv, "train", recorded, problems, growing=not finished)
