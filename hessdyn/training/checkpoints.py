"""The checkpoint schedule: which steps get a checkpoint.

A checkpoint is a plain dict of tensors and numbers (loadable with ``weights_only=True``) holding the
model, the optimizer state (Adam's moments are needed by the analysis), the RNG states and the data
sampler's position, so that a resumed run continues bit for bit. Its file is written and found by
:class:`hessdyn.store.RunDir`.
"""

from __future__ import annotations

import warnings

import numpy as np

from hessdyn.config import schema as s


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
