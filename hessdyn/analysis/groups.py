"""The metric groups of ``hessdyn analyze`` (``analysis.metrics``): what each one measures at every
checkpoint and what it writes once per run, in the order they run. The one place that decides whether a
group is on.

A new group is one :class:`MetricGroupSteps` entry here, its measurement function(s), and its table(s)
registered in :mod:`hessdyn.store.registry`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from hessdyn.analysis import per_checkpoint as measure
from hessdyn.analysis.checkpoint import Checkpoint, CheckpointInputs, CheckpointResult, open_checkpoint
from hessdyn.analysis.loading import RunContext
from hessdyn.analysis.noise import measure_noise
from hessdyn.analysis.nulls import compute_nulls
from hessdyn.analysis.reparam_panel import reparam_rows
from hessdyn.analysis.tables import write_trajectory_tables
from hessdyn.config import schema as s
from hessdyn.store import AnalysisDir

G = s.MetricGroup


@dataclass(frozen=True)
class RunWork:
    """What a group's once-per-run step gets: the run, its analysis folder and the checkpoints analyzed."""

    ctx: RunContext
    adir: AnalysisDir
    settings: s.AnalysisConfig
    dtype: torch.dtype
    steps: list[int]  # selected checkpoints, in order
    analyzed: list[int]  # those with eigenvectors on disk


@dataclass(frozen=True)
class MetricGroupSteps:
    """One metric group: ``at_checkpoint`` adds rows to a checkpoint's tables, ``after_run`` writes its
    per-run tables once every checkpoint is done. ``always``: on whatever ``analysis.metrics`` says."""

    group: s.MetricGroup
    at_checkpoint: Callable[[Checkpoint], None] | None = None
    after_run: Callable[[RunWork], None] | None = None
    always: bool = False


def _nulls(run: RunWork) -> None:
    compute_nulls(run.ctx, run.adir, run.settings, run.dtype)


def _reparam(run: RunWork) -> None:
    reparam_rows(run.ctx, run.adir, run.settings, run.dtype, run.analyzed[-1])


def _trajectory(run: RunWork) -> None:
    if run.ctx.dist.is_writer:  # no products: tables from the files rank 0 wrote
        write_trajectory_tables(run.adir, run.steps, run.settings)


METRIC_GROUPS: tuple[MetricGroupSteps, ...] = (
    MetricGroupSteps(G.spectrum, measure.measure_spectrum, always=True),
    MetricGroupSteps(G.bottom, measure.measure_bottom),
    MetricGroupSteps(G.localization, measure.measure_localization, _nulls),
    MetricGroupSteps(G.trace, measure.measure_trace),
    MetricGroupSteps(G.alignment, measure.measure_alignment),
    MetricGroupSteps(G.optimizer, measure.measure_optimizer),
    MetricGroupSteps(G.density, measure.measure_density),
    MetricGroupSteps(G.noise, measure_noise),
    MetricGroupSteps(G.reparam, after_run=_reparam),
    # no products and cheap: written for every analysis (the group name is accepted and changes nothing)
    MetricGroupSteps(G.trajectory, after_run=_trajectory, always=True),
)


def active_groups(settings: s.AnalysisConfig) -> list[MetricGroupSteps]:
    """The groups that run for ``settings``, in order."""
    return [g for g in METRIC_GROUPS if g.always or g.group in settings.metrics]


def analyze_checkpoint(inp: CheckpointInputs) -> CheckpointResult:
    """Measure one checkpoint with every active group; see docs/design.md for the table columns."""
    t0 = time.perf_counter()
    c = open_checkpoint(inp)
    for group in active_groups(inp.settings):
        if group.at_checkpoint is not None:
            group.at_checkpoint(c)
    c.summary["hvps"] = c.num_hvps
    c.summary["wall_s"] = time.perf_counter() - t0
    c.rows["summary"] = [c.summary]
    return CheckpointResult(
        inp.step, c.top_pairs(), c.bottom, c.rows, c.num_hvps, c.summary["wall_s"], extra=c.extra
    )


def after_run(run: RunWork) -> None:
    """Every active group's once-per-run tables."""
    for group in active_groups(run.settings):
        if group.after_run is not None:
            group.after_run(run)
