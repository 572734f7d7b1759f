"""Shared fixtures: small, CPU-only, deterministic."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

torch.set_num_threads(min(2, torch.get_num_threads()))


def shared_data_root() -> Path | None:
    """The machine's read-only real datasets (../shared/data beside the checkout, or $HESSDYN_SHARED_DATA)."""
    for candidate in (os.environ.get("HESSDYN_SHARED_DATA"), REPO.parent / "shared" / "data"):
        if candidate and Path(candidate, "MNIST", "raw").is_dir():
            return Path(candidate)
    return None


@pytest.fixture
def shared_data() -> Path:
    root = shared_data_root()
    if root is None:
        pytest.skip(
            "real MNIST/Fashion-MNIST copies not found (../shared/data or $HESSDYN_SHARED_DATA); a user's clone has none"
        )
    return root


def hessdyn_exe() -> list[str]:
    exe = shutil.which("hessdyn", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "hessdyn"]


@pytest.fixture
def run_cli(tmp_path: Path):
    """Run ``hessdyn ARGS`` in a subprocess inside tmp_path; returns CompletedProcess (text)."""

    def run(
        *args: str,
        check: bool = False,
        timeout: float = 600,
        cwd: Path | None = None,
        env: dict | None = None,
        unset: tuple[str, ...] = (),
    ):
        full_env = {
            **os.environ,
            "HESSDYN_RESULTS": str(tmp_path / "results"),
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        for name in unset:
            full_env.pop(name, None)
        proc = subprocess.run(
            [*hessdyn_exe(), *args],
            cwd=cwd or tmp_path,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"hessdyn {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    return run
