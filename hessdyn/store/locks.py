"""One writer per folder: an flock that dies with its holder."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

from hessdyn.config.errors import DirectoryInUse

LOCK_NAME = ".hessdyn.lock"


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
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            raise DirectoryInUse(
                f"{folder} is in use: {holder} is still writing there; wait for it to finish or stop it, "
                f"then rerun {what} (finished work is kept)"
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
