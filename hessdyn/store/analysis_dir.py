"""An analysis folder ``RUN/analysis[-<name>]/``: its settings record, per-checkpoint records, eigenvector
files and tables, and the one rule for "this checkpoint (or the whole analysis) is done".

Each checkpoint's result is committed as two files: ``eigvecs/step_XXXXXXXX.pt`` (written first) and
``steps/step_XXXXXXXX.json`` (its table rows; its presence marks the step done). A checkpoint found not
analyzable has a step record with a ``skipped`` reason and no eigenvector file.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from hessdyn.io import atomic_torch_save, atomic_write_json, read_json, safe_torch_load
from hessdyn.store.csv import Rows, write_table
from hessdyn.store.locks import exclusive_dir
from hessdyn.store.schema import table

ANALYSIS_FORMAT = "hessdyn-analysis-v1"
DEFAULT_NAME = "default"
FOLDER_PREFIX = "analysis"
META_FILE = "analysis.json"
LOG_FILE = "analyze.log"
STEPS_DIR = "steps"
EIGVECS_DIR = "eigvecs"
COMPLETE = "complete"  # analysis.json "status" once every selected checkpoint is done


def analysis_folder_name(name: str) -> str:
    """``analysis`` for the default settings name, ``analysis-<name>`` otherwise."""
    return FOLDER_PREFIX if name == DEFAULT_NAME else f"{FOLDER_PREFIX}-{name}"


def is_analysis_folder_name(folder: str) -> bool:
    return folder == FOLDER_PREFIX or folder.startswith(f"{FOLDER_PREFIX}-")


EXTRA_SETS_KEY = "extra_sets"  # eigenvector-file key: names of the extra eigenpair sets it holds


def pair_keys(name: str) -> tuple[str, str]:
    """Keys of the extra eigenpair set ``name`` (a metric group's, e.g. ``noise_covariance``) in a checkpoint's
    eigenvector file: ``<name>_eigenvalues`` (k,) float64 and ``<name>_eigenvectors`` (k, P) float32."""
    return f"{name}_eigenvalues", f"{name}_eigenvectors"


def step_file_name(step: int, suffix: str) -> str:
    return f"step_{step:08d}.{suffix}"


class AnalysisDir:
    """The analysis folder of settings ``name`` inside run folder ``run_path``."""

    def __init__(self, run_path: str | Path, name: str = DEFAULT_NAME) -> None:
        self.run_path = Path(run_path)
        self.name = name
        self.path = self.run_path / analysis_folder_name(name)

    def __repr__(self) -> str:
        return f"AnalysisDir({str(self.path)!r})"

    # ------------------------------------------------------------------------------------ files
    @property
    def meta_path(self) -> Path:
        return self.path / META_FILE

    @property
    def log_path(self) -> Path:
        return self.path / LOG_FILE

    def table_path(self, name: str) -> Path:
        """``<name>.csv`` of a registered analysis table."""
        return self.path / table(name).file_name

    def step_record_path(self, step: int) -> Path:
        return self.path / STEPS_DIR / step_file_name(step, "json")

    def eigvecs_path(self, step: int) -> Path:
        return self.path / EIGVECS_DIR / step_file_name(step, "pt")

    @contextlib.contextmanager
    def lock(self, what: str) -> Iterator[None]:
        """One writer at a time (see :func:`hessdyn.store.locks.exclusive_dir`); creates the folder."""
        with exclusive_dir(self.path, what):
            yield

    # ------------------------------------------------------------------------------ analysis.json
    def read_meta(self) -> dict[str, Any] | None:
        return read_json(self.meta_path) if self.meta_path.exists() else None

    def write_meta(self, meta: Mapping[str, Any]) -> None:
        atomic_write_json(self.meta_path, dict(meta))

    # --------------------------------------------------------------------------- per checkpoint
    def read_step_record(self, step: int) -> dict[str, Any] | None:
        path = self.step_record_path(step)
        return read_json(path) if path.exists() else None

    def write_step_record(self, step: int, rows: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
        """The rows of every step table at ``step``; written after the eigenvectors, it marks the step done."""
        atomic_write_json(self.step_record_path(step), dict(rows))

    def mark_skipped(self, step: int, reason: str) -> None:
        """Record that checkpoint ``step`` cannot be analyzed (done, without eigenvectors)."""
        atomic_write_json(self.step_record_path(step), {"step": step, "skipped": reason})

    def skip_reason(self, step: int) -> str | None:
        record = self.read_step_record(step)
        return record.get("skipped") if record is not None else None

    def forget_step(self, step: int) -> None:
        """Make ``step`` not done (recompute it); its eigenvector file is overwritten when it is."""
        self.step_record_path(step).unlink(missing_ok=True)

    def save_vectors(self, step: int, payload: Mapping[str, Any]) -> None:
        atomic_torch_save(self.eigvecs_path(step), dict(payload))

    def load_vectors(self, step: int) -> dict[str, Any]:
        """``{"step", "eigenvalues", "eigenvectors" (k, P) float32, "bottom_*", "param_names"}``, plus the
        extra eigenpair sets of the metric groups that saved one (names under ``extra_sets``, keys from
        :func:`pair_keys`)."""
        loaded: dict[str, Any] = safe_torch_load(self.eigvecs_path(step))
        return loaded

    def is_done(self, step: int) -> bool:
        """Analyzed, or found not analyzable (its step record says why)."""
        return self.step_record_path(step).exists() and (
            self.eigvecs_path(step).exists() or self.skip_reason(step) is not None
        )

    def analyzed(self, steps: Sequence[int]) -> list[int]:
        """The steps with eigenvectors on disk (done and not skipped), in the order given."""
        return [st for st in steps if self.eigvecs_path(st).exists() and self.is_done(st)]

    def is_complete(self, fingerprint: str, steps: Sequence[int]) -> bool:
        """The analysis with settings ``fingerprint`` over checkpoints ``steps`` is finished: nothing to do."""
        meta = self.read_meta()
        return (
            meta is not None
            and meta.get("status") == COMPLETE
            and meta.get("fingerprint") == fingerprint
            and meta.get("selected_steps") == list(steps)
            and all(self.is_done(st) for st in steps)
        )

    # ----------------------------------------------------------------------------------- tables
    def write_table(self, name: str, rows: Rows | pd.DataFrame, *, all_columns: bool = False) -> None:
        """Write the registered table ``name`` (see :func:`hessdyn.store.csv.write_table`)."""
        write_table(self.table_path(name), table(name), rows, all_columns=all_columns)

    def remove_table(self, name: str) -> None:
        self.table_path(name).unlink(missing_ok=True)

    def has_table(self, name: str) -> bool:
        return self.table_path(name).exists()
