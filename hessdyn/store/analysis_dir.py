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
from typing import Any, Final

import pandas as pd

from hessdyn.config.errors import HessdynError
from hessdyn.io import atomic_torch_save, atomic_write_json, safe_torch_load
from hessdyn.store.csv import Rows, write_table
from hessdyn.store.integrity import (
    DamagedFile,
    checksum,
    read_json_record,
    table_problem,
    table_record,
    vectors_problem,
    zip_problem,
)
from hessdyn.store.locks import exclusive_dir
from hessdyn.store.schema import table, tables

ANALYSIS_FORMAT = "hessdyn-analysis-v1"
DEFAULT_NAME = "default"
FOLDER_PREFIX: Final = "analysis"
META_FILE = "analysis.json"
LOG_FILE = "analyze.log"
STEPS_DIR = "steps"
EIGVECS_DIR = "eigvecs"
COMPLETE = "complete"  # analysis.json "status" once every selected checkpoint is done
CHECKSUM_KEY = "checksum"  # a step record's SHA-256 of its own content (hessdyn.store.integrity.checksum)
STEP_TODO = "rerun `hessdyn analyze` on the run: the checkpoint is analyzed again"
META_TODO = (
    "rerun `hessdyn analyze` on the run with force=true: the settings of the results in this folder are "
    "unknown, so every checkpoint is analyzed again"
)


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
        """``analysis.json``, or None; raises :class:`DamagedFile` when it does not parse (its settings are then
        unknown, so its checkpoints cannot be trusted: ``force=true`` recomputes them)."""
        if not self.meta_path.exists():
            return None
        return read_json_record(self.meta_path, (), META_TODO)

    def write_meta(self, meta: Mapping[str, Any]) -> None:
        atomic_write_json(self.meta_path, dict(meta))

    # --------------------------------------------------------------------------- per checkpoint
    def read_step_record(self, step: int) -> dict[str, Any] | None:
        """The rows of checkpoint ``step`` (or its ``skipped`` reason), or None when it is not done; raises
        :class:`DamagedFile` when the record does not parse or its checksum does not match."""
        path = self.step_record_path(step)
        if not path.exists():
            return None
        record = read_json_record(path, (), STEP_TODO)
        recorded = record.pop(CHECKSUM_KEY, None)
        if recorded is not None and recorded != checksum(record):
            raise DamagedFile(path, "its content does not match its checksum", STEP_TODO)
        return record

    def _write_step_file(self, step: int, record: Mapping[str, Any]) -> None:
        atomic_write_json(self.step_record_path(step), {**record, CHECKSUM_KEY: checksum(dict(record))})

    def write_step_record(self, step: int, rows: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
        """The rows of every step table at ``step``; written after the eigenvectors, it marks the step done."""
        self._write_step_file(step, rows)

    def mark_skipped(self, step: int, reason: str) -> None:
        """Record that checkpoint ``step`` cannot be analyzed (done, without eigenvectors)."""
        self._write_step_file(step, {"step": step, "skipped": reason})

    def skip_reason(self, step: int) -> str | None:
        record = self.read_step_record(step)
        return record.get("skipped") if record is not None else None

    def forget_step(self, step: int) -> None:
        """Make ``step`` not done (recompute it); its eigenvector file is overwritten when it is."""
        self.step_record_path(step).unlink(missing_ok=True)

    def save_vectors(self, step: int, payload: Mapping[str, Any]) -> None:
        atomic_torch_save(self.eigvecs_path(step), dict(payload))

    def load_vectors(self, step: int, num_params: int | None = None) -> dict[str, Any]:
        """``{"step", "eigenvalues", "eigenvectors" (k, P) float32, "bottom_*", "param_names"}``, plus the
        extra eigenpair sets of the metric groups that saved one (names under ``extra_sets``, keys from
        :func:`pair_keys`); checked (CRC-32, keys, shapes, ``P`` = ``num_params`` when given, finiteness):
        raises :class:`DamagedFile`."""
        path = self.eigvecs_path(step)
        problem = zip_problem(path)
        if problem is not None:
            raise DamagedFile(path, problem, STEP_TODO)
        try:
            loaded: dict[str, Any] = safe_torch_load(path)
        except HessdynError as exc:
            raise DamagedFile(path, str(exc), STEP_TODO) from exc
        problem = vectors_problem(loaded, num_params)
        if problem is not None:
            raise DamagedFile(path, problem, STEP_TODO)
        return loaded

    def step_problem(self, step: int, num_params: int | None = None) -> DamagedFile | None:
        """The damage of a done checkpoint's files (its record, its eigenvectors), or None when both pass."""
        try:
            record = self.read_step_record(step)
            if record is not None and "skipped" not in record:
                self.load_vectors(step, num_params)
        except DamagedFile as exc:
            return exc
        return None

    def is_done(self, step: int) -> bool:
        """Analyzed, or found not analyzable (its step record says why); a damaged record is not done."""
        if not self.step_record_path(step).exists():
            return False
        if self.eigvecs_path(step).exists():
            return True
        try:
            return self.skip_reason(step) is not None
        except DamagedFile:
            return False

    def analyzed(self, steps: Sequence[int]) -> list[int]:
        """The steps with eigenvectors on disk (done and not skipped), in the order given."""
        return [st for st in steps if self.eigvecs_path(st).exists() and self.is_done(st)]

    def is_complete(self, fingerprint: str, steps: Sequence[int]) -> bool:
        """The analysis with settings ``fingerprint`` over checkpoints ``steps`` is finished: nothing to do.

        Its tables must also pass their checks against what ``analysis.json`` recorded (see
        :meth:`table_problems`): a table deleted, cut or changed makes the analysis not complete, and
        ``hessdyn analyze`` rebuilds it from the per-checkpoint records."""
        meta = self.read_meta()
        return (
            meta is not None
            and meta.get("status") == COMPLETE
            and meta.get("fingerprint") == fingerprint
            and meta.get("selected_steps") == list(steps)
            and all(self.is_done(st) for st in steps)
            and not self.table_problems(meta)
            and not self.changed_steps(meta, steps)
        )

    def vector_sizes(self, steps: Sequence[int]) -> dict[str, int]:
        """Byte size of each eigenvector file of ``steps`` that exists: what ``analysis.json`` records when the
        analysis finishes (``eigvecs``), so that a file cut or deleted later is noticed without reading it."""
        return {
            str(st): self.eigvecs_path(st).stat().st_size for st in steps if self.eigvecs_path(st).is_file()
        }

    def changed_steps(self, meta: Mapping[str, Any], steps: Sequence[int]) -> list[int]:
        """Steps of a finished analysis whose files changed since: a step record that fails its checksum, or an
        eigenvector file whose size is not the one ``analysis.json`` recorded (cheap checks; the CRC-32 of the
        eigenvectors is checked when they are loaded)."""
        recorded_sizes = meta.get("eigvecs")
        sizes: Mapping[str, Any] = recorded_sizes if isinstance(recorded_sizes, dict) else {}
        changed = []
        for st in steps:
            try:
                record = self.read_step_record(st)
            except DamagedFile:
                changed.append(st)
                continue
            recorded = sizes.get(str(st))
            path = self.eigvecs_path(st)
            if record is not None and "skipped" not in record and recorded is not None:
                if not path.is_file() or path.stat().st_size != recorded:
                    changed.append(st)
        return changed

    # ----------------------------------------------------------------------------------- tables
    def write_table(self, name: str, rows: Rows | pd.DataFrame, *, all_columns: bool = False) -> None:
        """Write the registered table ``name`` (see :func:`hessdyn.store.csv.write_table`)."""
        write_table(self.table_path(name), table(name), rows, all_columns=all_columns)

    def table_records(self) -> dict[str, dict[str, Any]]:
        """Rows and SHA-256 of every registered table in the folder: what ``analysis.json`` records when the
        analysis finishes (``tables``)."""
        out = {}
        for t in tables(folder=FOLDER_PREFIX):
            path = self.path / t.file_name
            if path.is_file():
                out[t.name] = table_record(path)
        return out

    def table_problems(self, meta: Mapping[str, Any] | None = None) -> dict[str, str]:
        """Table name -> what is wrong with it, for the tables ``analysis.json`` recorded (a finished analysis)
        or, before it finishes, for every table present (header, partial last line, row widths)."""
        meta = self.read_meta() if meta is None else meta
        recorded = (meta or {}).get("tables")
        out = {}
        registered = {t.name: t for t in tables(folder=FOLDER_PREFIX)}
        if isinstance(recorded, dict):
            for name, record in recorded.items():
                if name not in registered:  # a table of a metric group this version no longer has
                    continue
                t = registered[name]
                problem = table_problem(self.path / t.file_name, t.names, record)
                if problem is not None:
                    out[name] = problem
            return out
        for t in registered.values():
            path = self.path / t.file_name
            problem = table_problem(path, t.names) if path.is_file() else None
            if problem is not None:
                out[t.name] = problem
        return out

    def remove_table(self, name: str) -> None:
        self.table_path(name).unlink(missing_ok=True)

    def has_table(self, name: str) -> bool:
        return self.table_path(name).exists()
