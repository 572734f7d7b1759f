"""Learning-rate schedules as pure functions of the step (nothing to checkpoint)."""

from __future__ import annotations

import bisect
import math

from hessdyn.config import schema as s


def lr_multiplier(cfg: s.ScheduleConfig, step: int, total_steps: int) -> float:
    """Multiplier of the base learning rate for the update taken at ``step`` (0-based)."""
    if cfg.warmup_steps > 0 and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if isinstance(cfg, s.ConstantScheduleConfig):
        return 1.0
    if isinstance(cfg, s.CosineScheduleConfig):
        span = max(total_steps - cfg.warmup_steps, 1)
        progress = min(max(step - cfg.warmup_steps, 0) / span, 1.0)
        return cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
    if isinstance(cfg, s.StepScheduleConfig):
        if cfg.milestones:
            drops = bisect.bisect_right(sorted(cfg.milestones), step)
        else:
            drops = step // cfg.step_size
        return cfg.gamma**drops
    raise ValueError(f"unknown schedule {cfg.name!r}")
