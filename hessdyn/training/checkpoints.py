"""Checkpoint schedule, atomic checkpoint files and their discovery.

A checkpoint is a plain dict of tensors and numbers (loadable with ``weights_only=True``) holding the
model, the optimizer state (Adam's moments are needed by the analysis), the RNG states and the data
sampler's position, so that a resumed run continues bit for bit.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from hessdyn.config import schema as s
from hessdyn.io import atomic_torch_save, safe_torch_load

FORMAT = "hessdyn-checkpoint-v1"
_NAME = re.compile(r"^step_(\d{8})\.pt$")


def checkpoint_steps(cfg: s.CheckpointConfig, total_steps: int) -> list[int]:
    """Sorted steps that get a checkpoint; always includes 0 and ``total_steps``."""
    steps = {0, total_steps}
    if cfg.schedule == s.CheckpointSchedule.every:
        steps.update(range(0, total_steps + 1, cfg.every))
    elif cfg.schedule == s.CheckpointSchedule.log:
        if total_steps >= 1:
            # Curvature changes fastest early: geometric spacing, rounded to distinct integer steps.
            grid = np.geomspace(1, total_steps, num=max(cfg.num, 2))
            steps.update(int(round(x)) for x in grid)
    else:
        late = [x for x in cfg.steps if x > total_steps]
        if late:
            warnings.warn(
                f"checkpoint.steps beyond the last step {total_steps} are ignored: {late}", stacklevel=2
            )
        steps.update(x for x in cfg.steps if x <= total_steps)
    return sorted(steps)


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step_{step:08d}.pt"


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of every complete checkpoint file of a run, in step order."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        m = _NAME.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found)


def save_checkpoint(run_dir: Path, payload: dict[str, Any]) -> Path:
    path = checkpoint_path(run_dir, int(payload["step"]))
    atomic_torch_save(path, {"format": FORMAT, **payload})
    return path


def load_checkpoint(path: str | Path, map_location: str = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely (``weights_only=True``); refuses foreign or pickled content."""
    from hessdyn.config.errors import HessdynError

    ckpt = safe_torch_load(path, map_location=map_location)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise HessdynError(f"{path} is not a hessdyn checkpoint (expected format {FORMAT!r})")
    return ckpt


def remove_stale_temporaries(run_dir: Path) -> None:
    """Delete half-written checkpoint temporaries left by a killed process."""
    folder = Path(run_dir) / "checkpoints"
    if folder.is_dir():
        for p in folder.glob(".step_*.tmp"):
            p.unlink(missing_ok=True)
