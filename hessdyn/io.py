"""Atomic file writes and safe loading, shared by every stage that writes results (the folder locks and
every path inside a run folder belong to :mod:`hessdyn.store`)."""

from __future__ import annotations

import json
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch

from hessdyn.config.errors import HessdynError


def current_umask() -> int:
    """The process's umask, read without changing it where the kernel says it (Linux), else set and reset."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _atomic_target(path: Path) -> tuple[int, str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    # mkstemp creates 0600; a result file gets the mode any other new file would (0644 under umask 022)
    os.fchmod(fd, 0o666 & ~current_umask())
    return fd, tmp


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
    except Exception as exc:  # noqa: BLE001 - a damaged file can fail anywhere inside the unpickler
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise HessdynError(
            f"cannot read {path}: {type(exc).__name__}: {first} (the file is damaged; restore or delete it)"
        ) from exc


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def check_writable(path: str | os.PathLike, what: str) -> None:
    """Refuse, before anything is written, a destination that cannot be written: ``path`` is a file where
    a folder is wanted, or its nearest existing folder is read-only (a read-only mount, no permission).
    ``what`` names the setting that chose it (``out_dir``, ``run_dir``, ``out``)."""
    path = Path(path).expanduser().absolute()
    if path.exists() and not path.is_dir():
        raise HessdynError(f"{what}: {path} is a file, not a folder; choose a folder")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise HessdynError(f"{what}: {existing} is a file, not a folder; choose a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise HessdynError(
            f"{what}: cannot write into {existing} (read-only or no permission); choose a writable folder "
            "or fix its permissions"
        )
