"""A run folder (Hydra's job folder of ``hessdyn train``): where everything of one run lives, its
``run.json`` record, its checkpoints, and the one rule that says whether a folder is a run.

```
RUN/
  .hydra/config.yaml overrides.yaml hydra.yaml   Hydra's provenance
  run.json                                       status and provenance (RunStatus)
  train.log
  metrics/train.csv sharpness.csv                and further registered ``metrics`` tables
  checkpoints/step_XXXXXXXX.pt
  analysis/ analysis-<name>/                     AnalysisDir
  report/                                        a single-run report
```
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from hessdyn.config.errors import HessdynError
from hessdyn.io import atomic_torch_save, atomic_write_json, safe_torch_load
from hessdyn.store.analysis_dir import (
    DEFAULT_NAME,
    AnalysisDir,
    step_file_name,
)
from hessdyn.store.integrity import DamagedFile, missing_keys, read_json_record, zip_problem
from hessdyn.store.locks import exclusive_dir, is_locked
from hessdyn.store.schema import table
from hessdyn.store.status import RunStatus

CHECKPOINT_FORMAT = "hessdyn-checkpoint-v1"
# What every reader of a checkpoint needs, and what resuming training needs besides.
CHECKPOINT_KEYS = ("format", "step", "config_hash", "model")
RESUME_KEYS = (*CHECKPOINT_KEYS, "optimizer", "rng", "sampler", "accumulators")
CHECKPOINT_TODO = (
    "restore it from a backup, or move it out of checkpoints/ and rerun `hessdyn train` with the run's "
    "command: it recomputes the missing checkpoint from the previous one (bit for bit on the CPU)"
)
RUN_JSON_TODO = (
    "restore it from a backup, or move it away and rerun `hessdyn train` with the run's command: it "
    "resumes from the checkpoints (their config hash is checked)"
)
RUN_JSON = "run.json"
HYDRA_DIR = ".hydra"
METRICS_DIR = "metrics"
CHECKPOINTS_DIR = "checkpoints"
REPORT_DIR = "report"
TRAIN_LOG = "train.log"
_CHECKPOINT_FILE = re.compile(r"^step_(\d{8})\.pt$")


class RunDir:
    """The run folder at ``path`` (which need not exist yet)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunDir) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    # ------------------------------------------------------------------------------------ files
    @property
    def run_json(self) -> Path:
        return self.path / RUN_JSON

    @property
    def hydra_dir(self) -> Path:
        """Hydra's provenance: ``config.yaml``, ``overrides.yaml``, ``hydra.yaml``."""
        return self.path / HYDRA_DIR

    @property
    def hydra_config(self) -> Path:
        return self.hydra_dir / "config.yaml"

    @property
    def hydra_overrides(self) -> Path:
        return self.hydra_dir / "overrides.yaml"

    @property
    def hydra_settings(self) -> Path:
        """Hydra's own settings of the job (``hydra.yaml``)."""
        return self.hydra_dir / "hydra.yaml"

    @property
    def train_log(self) -> Path:
        return self.path / TRAIN_LOG

    def metrics_table(self, name: str) -> Path:
        """``metrics/<name>.csv`` of a registered ``metrics`` table (``train``, ...)."""
        registered = table(name)
        if registered.folder != METRICS_DIR:
            raise ValueError(f"table {name} lives in an analysis folder, not in metrics/")
        return self.path / METRICS_DIR / registered.file_name

    @property
    def train_csv(self) -> Path:
        return self.metrics_table("train")

    @property
    def sharpness_csv(self) -> Path:
        """The training-time sharpness probe's table (``trainer.sharpness``)."""
        return self.metrics_table("sharpness")

    @property
    def report_dir(self) -> Path:
        """Where a report of this run alone goes."""
        return self.path / REPORT_DIR

    def analysis(self, name: str = DEFAULT_NAME) -> AnalysisDir:
        """The analysis folder of settings ``name`` (``analysis/`` for the default)."""
        return AnalysisDir(self.path, name)

    @contextlib.contextmanager
    def lock(self, what: str) -> Iterator[None]:
        """One writer at a time (see :func:`hessdyn.store.locks.exclusive_dir`)."""
        with exclusive_dir(self.path, what):
            yield

    # ----------------------------------------------------------------------------------- run.json
    def read_record(self) -> dict[str, Any] | None:
        """``run.json`` as written, or None when there is none; raises :class:`DamagedFile` when it does not
        parse or lacks its status."""
        if not self.run_json.exists():
            return None
        return read_json_record(self.run_json, ("status",), RUN_JSON_TODO)

    def write_record(self, record: Mapping[str, Any]) -> None:
        """Write ``run.json`` (its ``status`` must be a writable :class:`RunStatus`), stamped with the time,
        the writer's pid and argv."""
        status = record.get("status")
        if RunStatus.parse(status) is RunStatus.UNKNOWN:
            raise ValueError(f"bad status {status!r}")
        out = {**record, "status": RunStatus(status).value}
        out["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        out.setdefault("pid", os.getpid())
        out.setdefault("argv", sys.argv)
        atomic_write_json(self.run_json, out)

    def status(self, record: Mapping[str, Any] | None = None) -> RunStatus:
        """The run's true status: ``run.json``'s (``record`` when given), except that a "running" run whose
        process is gone (its folder lock is free: killed by kill -9, a crash of the machine) is
        ``INTERRUPTED``; ``UNKNOWN`` without ``run.json``."""
        record = self.read_record() if record is None else record
        if record is None:
            return RunStatus.UNKNOWN
        status = RunStatus.parse(record.get("status"))
        if status is RunStatus.RUNNING and not is_locked(self.path):
            return RunStatus.INTERRUPTED
        return status

    def missing_checkpoints(self, record: Mapping[str, Any] | None = None) -> list[int]:
        """Checkpoint steps the run wrote (``run.json``'s ``checkpoint_steps`` up to its ``steps``) whose file
        is gone (moved away as damaged): ``hessdyn train`` recomputes them."""
        record = self.read_record() if record is None else record
        if not record:
            return []
        reached = int(record.get("steps") or 0)
        present = set(self.checkpoint_steps())
        return [st for st in record.get("checkpoint_steps") or [] if st <= reached and st not in present]

    # -------------------------------------------------------------------------------- checkpoints
    @property
    def checkpoints_dir(self) -> Path:
        return self.path / CHECKPOINTS_DIR

    def checkpoint_path(self, step: int) -> Path:
        return self.checkpoints_dir / step_file_name(step, "pt")

    def checkpoints(self) -> list[tuple[int, Path]]:
        """(step, path) of every complete checkpoint file, in step order."""
        if not self.checkpoints_dir.is_dir():
            return []
        found = []
        for p in self.checkpoints_dir.iterdir():
            m = _CHECKPOINT_FILE.match(p.name)
            if m:
                found.append((int(m.group(1)), p))
        return sorted(found)

    def checkpoint_steps(self) -> list[int]:
        return [step for step, _ in self.checkpoints()]

    def has_checkpoint_files(self) -> bool:
        """Anything in ``checkpoints/`` (complete or half-written): the folder holds a run's state."""
        return self.checkpoints_dir.is_dir() and any(self.checkpoints_dir.iterdir())

    def save_checkpoint(self, payload: Mapping[str, Any]) -> Path:
        """Write ``payload`` (a dict of tensors and numbers with ``step``) atomically; returns its path."""
        path = self.checkpoint_path(int(payload["step"]))
        atomic_torch_save(path, {"format": CHECKPOINT_FORMAT, **payload})
        return path

    def checkpoint_config_hash(self) -> str | None:
        """The config hash of the newest intact checkpoint (None without one): who a run folder whose
        ``run.json`` is gone belongs to."""
        for _step, path in reversed(self.checkpoints()):
            try:
                return str(load_checkpoint(path)["config_hash"])
            except HessdynError:
                continue
        return None

    def set_aside(self, path: Path) -> Path:
        """Rename a damaged checkpoint out of the checkpoint list (``step_XXXXXXXX.pt.damaged``; kept, never
        deleted); returns its new path."""
        target = path.with_name(f"{path.name}.damaged")
        n = 1
        while target.exists():
            n += 1
            target = path.with_name(f"{path.name}.damaged{n}")
        os.replace(path, target)
        return target

    def remove_stale_temporaries(self) -> None:
        """Delete half-written checkpoint temporaries left by a killed process."""
        if self.checkpoints_dir.is_dir():
            for p in self.checkpoints_dir.glob(".step_*.tmp"):
                p.unlink(missing_ok=True)


def load_checkpoint(
    path: str | Path,
    map_location: str = "cpu",
    *,
    config_hash: str | None = None,
    keys: Sequence[str] = CHECKPOINT_KEYS,
) -> dict[str, Any]:
    """Load a checkpoint after checking it: every zip member's CRC-32, safe unpickling
    (``weights_only=True``: foreign or pickled content is refused), its format, ``keys``, the step its
    file name says and, when given, the ``config_hash`` of the run it belongs to.

    A damaged file raises :class:`DamagedFile` (one line naming it and what to do); a checkpoint of another
    config a :class:`HessdynError`.
    """
    path = Path(path)
    problem = zip_problem(path)
    if problem is not None:
        raise DamagedFile(path, problem, CHECKPOINT_TODO)
    ckpt = safe_torch_load(path, map_location=map_location)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise HessdynError(f"{path} is not a hessdyn checkpoint (expected format {CHECKPOINT_FORMAT!r})")
    missing = missing_keys(ckpt, keys)
    if missing:
        raise DamagedFile(path, f"no {', '.join(missing)}", CHECKPOINT_TODO)
    named = _CHECKPOINT_FILE.match(path.name)
    if named and int(named.group(1)) != int(ckpt["step"]):
        raise DamagedFile(path, f"it holds step {ckpt['step']}, not the step of its name", CHECKPOINT_TODO)
    if config_hash is not None and ckpt.get("config_hash") != config_hash:
        raise HessdynError(
            f"{path} was written by another config (hash {ckpt.get('config_hash')} != {config_hash} of "
            f"{path.parent.parent}); it does not belong to this run: move it away"
        )
    return ckpt


# -------------------------------------------------------------------------------------- finding runs
def is_run_dir(path: str | Path) -> bool:
    """A run folder: it has ``run.json``, or (a job that stopped before writing one) a ``.hydra/config.yaml``
    of a training config (one with a ``trainer`` section)."""
    run = RunDir(path)
    if run.run_json.is_file():
        return True
    if not run.hydra_config.is_file():
        return False
    try:
        cfg = OmegaConf.load(run.hydra_config)
    except Exception:
        return False
    return isinstance(cfg, DictConfig) and "trainer" in cfg


def find_run_dirs(root: str | Path) -> list[Path]:
    """Run folders at or below ``root`` (a run or a sweep folder), sorted by path.

    Hidden folders and the inside of a run (its checkpoints, metrics, analysis folders, reports) are not
    searched; any other folder is, whatever its name (a run folder may be named ``analysis-x`` or
    ``report``).
    """
    found: list[Path] = []
    for here_text, dirs, _files in os.walk(root):
        here = Path(here_text)
        if is_run_dir(here):
            found.append(here)
            dirs[:] = []  # a run holds no nested runs
            continue
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
    return sorted(found)


def sweep_report_dir(sweep: str | Path) -> Path:
    """Where the report of a sweep (or experiment) folder goes."""
    return Path(sweep) / REPORT_DIR


def sweep_analyze_dir(sweep: str | Path, name: str = DEFAULT_NAME) -> Path:
    """Hydra's job folder of ``hessdyn analyze sweep_dir=...`` (its log and provenance)."""
    return Path(sweep) / ("analyze" if name == DEFAULT_NAME else f"analyze-{name}")
