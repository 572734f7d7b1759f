"""Where a report goes, and how it replaces a previous one without ever being half-written.

The report is written into a hidden staging folder beside its destination and renamed into place at the
end; the only thing ever deleted is the previous report folder it replaces (a folder holding
``index.html`` and ``runs.csv``, or an empty one).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from hessdyn.config.errors import HessdynError
from hessdyn.store import RunDir, sweep_report_dir

STAGING_MARK = ".staging-"
INDEX = "index.html"
RUNS = "runs.csv"


def index_page(folder: Path) -> Path:
    """The report's page inside its folder."""
    return Path(folder) / INDEX


def default_out(sweep_dir: str | None, run_dirs: Sequence[str]) -> Path:
    """``SWEEP/report``; for run directories alone ``RUN/report`` (one) or ``<common parent>/report``."""
    if sweep_dir:
        return sweep_report_dir(Path(sweep_dir).expanduser().resolve())
    if not run_dirs:
        raise HessdynError("nothing to report: give sweep_dir=PATH or run_dirs=[RUN,...]")
    paths = [str(Path(p).expanduser().resolve()) for p in run_dirs]
    if len(paths) == 1:
        return RunDir(paths[0]).report_dir
    return sweep_report_dir(os.path.commonpath(paths))


def is_report_dir(path: Path) -> bool:
    return index_page(path).is_file() and (path / RUNS).is_file()


def check_replaceable(out: Path) -> None:
    """Refuse a destination that exists and is neither empty nor a previous report."""
    if not out.exists():
        return
    if not out.is_dir():
        raise HessdynError(f"out={out} is a file; choose a folder for the report")
    if any(out.iterdir()) and not is_report_dir(out):
        raise HessdynError(
            f"out={out} exists and is not a hessdyn report (no index.html and runs.csv); "
            "choose a new or empty folder, the report replaces its destination"
        )


def staging_dir(out: Path) -> Path:
    """A fresh hidden folder beside ``out`` (same file system, so the final rename is atomic)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f".{out.name}{STAGING_MARK}", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    path.chmod(0o777 & ~umask)  # mkdtemp's 0700 would make the report private
    return path


def swap_in(staging: Path, out: Path) -> None:
    """Rename ``staging`` to ``out``; a previous report at ``out`` is moved aside first and then deleted."""
    check_replaceable(out)
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}-{time.time_ns()}")
        os.replace(out, old)
    try:
        os.replace(staging, out)
    except OSError:
        if old is not None:
            os.replace(old, out)
        raise
    if old is not None:
        shutil.rmtree(old)
