"""``run.json``: status and provenance of a training run."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from hessdyn.io import atomic_write_json, read_json

STATUSES = ("running", "completed", "diverged", "failed")


def git_commit() -> str | None:
    """Commit of the hessdyn source tree when it is a git checkout (None for an installed wheel)."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        if out.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict[str, str]:
    import hydra
    import numpy
    import torch

    import hessdyn

    return {
        "hessdyn": hessdyn.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "hydra": hydra.__version__,
        "platform": platform.platform(),
    }


def read_run_record(run_dir: str | Path) -> dict[str, Any] | None:
    path = Path(run_dir) / "run.json"
    if not path.exists():
        return None
    return read_json(path)


def write_run_record(run_dir: str | Path, record: dict[str, Any]) -> None:
    if record.get("status") not in STATUSES:
        raise ValueError(f"bad status {record.get('status')!r}")
    record = dict(record)
    record["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    record.setdefault("pid", os.getpid())
    record.setdefault("argv", sys.argv)
    atomic_write_json(Path(run_dir) / "run.json", record)
