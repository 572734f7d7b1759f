"""Atomic file writes, safe checkpoint loading and one-writer folder locks, shared by every stage that
writes results."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

import torch

from hessdyn.config.errors import DirectoryInUse, HessdynError


def _atomic_target(path: Path) -> tuple[int, str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    return tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)


def _commit(tmp: str, path: Path) -> None:
    # fsync before rename: after a crash the file is either the old or the complete new version.
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    path = Path(path)
    fd, tmp = _atomic_target(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        _commit(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def atomic_torch_save(path: str | os.PathLike, obj: Any) -> None:
    path = Path(path)
    fd, tmp = _atomic_target(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
        _commit(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def safe_torch_load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(weights_only=True)``: a file that needs arbitrary unpickling is refused."""
    path = Path(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise HessdynError(
            f"refusing to load {path}: it holds arbitrary Python objects, not plain tensors "
            f"(weights_only loading failed); only load files you trust, re-saved as plain state dicts"
        ) from exc
    except (RuntimeError, EOFError, OSError) as exc:
        raise HessdynError(
            f"cannot read {path}: {str(exc).splitlines()[0]} (the file is damaged; delete it)"
        ) from exc


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


LOCK_NAME = ".hessdyn.lock"


@contextlib.contextmanager
def exclusive_dir(folder: str | os.PathLike, what: str) -> Iterator[None]:
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
