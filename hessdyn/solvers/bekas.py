"""Stochastic diagonal of a symmetric operator (Bekas, Kokiopoulou & Saad, Appl. Numer. Math. 57, 2007).

With Rademacher probes z (z ⊙ z = 1) Bekas et al.'s estimator Σ_k z_k ⊙ A z_k ⊘ Σ_k z_k ⊙ z_k is the plain
mean of the per-probe samples s_k = z_k ⊙ A z_k. Each entry is unbiased, E[(s_k)_i] = A_ii, with variance
Σ_{j≠i} A_ij² per probe, so the standard error of the mean falls as 1/sqrt(num_probes) and is large for
entries whose off-diagonal row mass dominates their diagonal.
"""

from __future__ import annotations

import math
import time

import torch

from hessdyn.curvature.operator import CurvatureOperator
from hessdyn.solvers.probes import apply64, mean_and_se, rademacher
from hessdyn.solvers.results import DiagonalResult


def bekas_diagonal(
    op: CurvatureOperator, num_probes: int = 100, *, seed: int = 0, block_size: int = 10
) -> DiagonalResult:
    """diag(A) ≈ mean_k z_k ⊙ A z_k over `num_probes` Rademacher probes (one product each), in blocks of
    `block_size`; standard_error = sample standard deviation (ddof 1) / sqrt(num_probes), entrywise.

    Same seed, same probes as `hutchinson` (so the sum of the diagonal is its trace estimate, returned with
    its standard error as trace, trace_se); the result does not depend on block_size. Accumulates entrywise means and centred sums of squares blockwise (Chan et al.)
    in float64, never the P × num_probes samples.
    """
    if num_probes < 2:
        raise ValueError(f"num_probes must be >= 2 for a standard error, got {num_probes}")
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    start = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    count = 0
    mean = torch.zeros(op.size, dtype=torch.float64, device=op.device)
    centred = torch.zeros_like(mean)
    traces = []  # per-probe zᵀAz: the trace samples
    for first in range(0, num_probes, block_size):
        Z = rademacher(op.size, min(block_size, num_probes - first), gen, op.device)
        samples = Z * apply64(op, Z)  # (P, m): column k is z_k ⊙ A z_k
        m = samples.shape[1]
        traces.append(samples.sum(dim=0))
        block_mean = samples.mean(dim=1)
        block_centred = (samples - block_mean[:, None]).pow(2).sum(dim=1)
        delta = block_mean - mean
        merged = count + m
        mean += delta * (m / merged)
        centred += block_centred + delta.pow(2) * (count * m / merged)
        count = merged
    variance = centred / (count - 1)
    trace, trace_se = mean_and_se(torch.cat(traces))
    return DiagonalResult(
        diagonal=mean,
        standard_error=variance.sqrt() / math.sqrt(count),
        num_probes=num_probes,
        num_hvps=num_probes,
        wall_seconds=time.perf_counter() - start,
        method="bekas",
        trace=trace,
        trace_se=trace_se,
    )
