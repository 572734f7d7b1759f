"""Where a report goes, and how it replaces a previous one without ever being half-written.

The report is written into a hidden staging folder beside its destination and renamed into place at the
end; the only thing ever deleted is the previous report folder it replaces (a folder holding
``index.html`` and ``runs.csv``, or an empty one).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from hessdyn.config.errors import DirectoryInUse, HessdynError
from hessdyn.store import RunDir, is_locked, sweep_report_dir
from hessdyn.store.locks import exclusive_folder

STAGING_MARK = ".staging-"
OLD_MARK = ".old-"
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


@contextlib.contextmanager
def building(out: Path) -> Iterator[None]:
    """Hold the lock of ``out``'s folder (an flock on the folder itself: no file is left) while a report is
    written and swapped in there: a second build is refused with one line. Holding it, remove what killed
    builds left beside ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with exclusive_folder(out.parent):
            remove_stale(out)
            yield
    except DirectoryInUse:
        raise DirectoryInUse(_BUSY.format(out=out)) from None


_BUSY = (
    "another hessdyn report is being written beside {out} now; wait for it to finish (a report replaces its "
    "folder whole), then rerun if you need this one"
)


def check_not_building(out: Path) -> None:
    """Refuse, before anything is written, a report while another one is being written in the same folder."""
    if out.parent.is_dir() and is_locked(out.parent, name=None):
        raise DirectoryInUse(_BUSY.format(out=out))


def _pid_of(folder: Path, mark: str) -> int | None:
    head = folder.name.split(mark, 1)[-1].split("-", 1)[0]
    return int(head) if head.isdigit() else None


def _alive(pid: int | None) -> bool:
    if pid is None or pid == os.getpid():
        return pid is not None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stamp(folder: Path) -> int:
    tail = folder.name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def remove_stale(out: Path) -> None:
    """Delete the hidden folders killed builds left beside ``out``: staging folders of processes that are
    gone, and a previous report moved aside (``.old-``) but never deleted; a report moved aside while
    ``out`` is missing (killed between the two renames of :func:`swap_in`) is put back first."""
    olds = sorted(out.parent.glob(f".{out.name}{OLD_MARK}*"), key=_stamp)
    if olds and not out.exists() and is_report_dir(olds[-1]):
        os.replace(olds.pop(), out)
    for old in olds:
        shutil.rmtree(old, ignore_errors=True)
    for staging in out.parent.glob(f".{out.name}{STAGING_MARK}*"):
        if not _alive(_pid_of(staging, STAGING_MARK)):
            shutil.rmtree(staging, ignore_errors=True)


def staging_dir(out: Path) -> Path:
    """A fresh hidden folder beside ``out`` (same file system, so the final rename is atomic), named after
    this process (``.<out>.staging-<pid>-...``) so that a later build can tell it was left by a dead one."""
    out.parent.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f".{out.name}{STAGING_MARK}{os.getpid()}-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    path.chmod(0o777 & ~umask)  # mkdtemp's 0700 would make the report private
    return path


def swap_in(staging: Path, out: Path) -> None:
    """Rename ``staging`` to ``out``; a previous report at ``out`` is moved aside first and then deleted."""
    check_replaceable(out)
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}{OLD_MARK}{os.getpid()}-{time.time_ns()}")
        os.replace(out, old)
    try:
        os.replace(staging, out)
    except OSError:
        if old is not None:
            os.replace(old, out)
        raise
    if old is not None:
        shutil.rmtree(old)
