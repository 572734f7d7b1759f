"""One writer per folder: an flock that dies with its holder."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

from hessdyn.config.errors import DirectoryInUse

LOCK_NAME = ".hessdyn.lock"


# A reader probing a lock (is_locked) holds it for microseconds; a writer retries that long before it
# calls the folder in use.
_ACQUIRE_TRIES = 20
_ACQUIRE_PAUSE_S = 0.05


def is_locked(folder: str | os.PathLike[str], name: str | None = LOCK_NAME) -> bool:
    """Whether a process holds ``folder``'s write lock now (False where flock does not exist); ``name``
    None: the lock on the folder itself (:func:`exclusive_folder`).

    The lock dies with its holder, so a run folder whose ``run.json`` says "running" but whose lock is
    free belongs to a process that is gone (killed): its true status is "interrupted".
    """
    path = Path(folder) / name if name is not None else Path(folder)
    if fcntl is None or not path.exists():
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _acquire(fd: int) -> bool:
    for attempt in range(_ACQUIRE_TRIES):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if attempt + 1 < _ACQUIRE_TRIES:
                time.sleep(_ACQUIRE_PAUSE_S)
    return False


@contextlib.contextmanager
def exclusive_folder(folder: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive flock on ``folder`` itself (no lock file is left behind): for writers that replace
    something inside a folder they do not own, such as a report beside a sweep's runs. A second holder
    gets :class:`DirectoryInUse`."""
    if fcntl is None:
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        if not _acquire(fd):
            raise DirectoryInUse(f"{folder} is in use by another process", "another process")
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextlib.contextmanager
def exclusive_dir(folder: str | os.PathLike[str], what: str) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` while one process writes ``what`` there.

    A second hessdyn process on the same folder (the same command started twice, a requeued cluster job
    whose predecessor still runs) gets one clear error instead of interleaving its writes with the
    first's. The lock is an flock on ``folder/.hessdyn.lock``: the kernel drops it when its holder exits,
    even by kill -9, so a crashed run never leaves a stale lock behind.
    """
    folder = Path(folder)
    folder.mkdir(exist_ok=True)  # its parent must exist: a lock never invents a run directory
    if fcntl is None:  # no flock on this platform: run unguarded
        yield
        return
    path = folder / LOCK_NAME
    with open(path, "a+", encoding="utf-8") as fh:
        if not _acquire(fh.fileno()):
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            raise DirectoryInUse(
                f"{folder} is in use: {holder} is still writing there; wait for it to finish or stop it, "
                f"then rerun {what} (finished work is kept)",
                holder,
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{what} (pid {os.getpid()} on {socket.gethostname()})\n")
        fh.flush()
        try:
            yield
        finally:
            fh.seek(0)
            fh.truncate()
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
