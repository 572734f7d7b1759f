"""Hutchinson's estimators of tr(A) = E[zᵀAz] and tr(A²) = E[||Az||²] with Rademacher probes z."""

from __future__ import annotations

import time

import torch

from hessdyn.curvature.operator import CurvatureOperator
from hessdyn.solvers.probes import apply64, mean_and_se, rademacher
from hessdyn.solvers.results import TraceResult


def hutchinson(
    op: CurvatureOperator, num_probes: int = 100, *, seed: int = 0, block_size: int = 10
) -> TraceResult:
    """tr(A) and tr(A²) from the same `num_probes` products (one each), in blocks of `block_size` probes."""
    if num_probes < 2:
        raise ValueError(f"num_probes must be >= 2 for a standard error, got {num_probes}")
    start = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    quad, sq = [], []
    for first in range(0, num_probes, block_size):
        Z = rademacher(op.size, min(block_size, num_probes - first), gen, op.device)
        AZ = apply64(op, Z)
        quad.append((Z * AZ).sum(0))
        sq.append(AZ.pow(2).sum(0))
    tr, tr_se = mean_and_se(torch.cat(quad))
    tr2, tr2_se = mean_and_se(torch.cat(sq))
    return TraceResult(
        trace=tr,
        trace_se=tr_se,
        trace_sq=tr2,
        trace_sq_se=tr2_se,
        num_probes=num_probes,
        num_hvps=num_probes,
        wall_seconds=time.perf_counter() - start,
        method="hutchinson",
    )
