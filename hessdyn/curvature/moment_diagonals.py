"""Exact diagonals and traces of the gradient second moment M and covariance C from per-example gradients.

One pass over the examples in chunks of per-example gradients (torch.func vmap over grad, n × P at a time),
merged with Chan et al.'s pairwise update of weighted means and centred sums of squares, in float64:
diag(C) is accumulated centred, never as diag(M) − ḡ², so it keeps its relative accuracy when the mean
gradient dominates. Definitions as in `hessdyn.curvature.gradient_moments` (same risk, weights, mode).
Cost: one per-example gradient per example, about 10–60 mini-batch gradients' worth on the benchmark MLP
(scripts/bench_noise.py); for large models use `hessdyn.solvers.bekas_diagonal` on the operators instead.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from hessdyn.curvature.per_sample import (
    decay_gradient,
    example_chunks,
    per_sample_gradients,
    require_per_sample_gradients,
)
from hessdyn.curvature.risk import EmpiricalRisk

DEFAULT_CHUNK_BYTES = 256 * 2**20


@dataclass(frozen=True)
class GradientMomentDiagonals:
    """Exact per-parameter moments of the stochastic gradients g_n (weight-decay shift included), float64.

    mean_gradient (P,): ḡ = Σ_n w_n g_n (the risk's gradient). second_moment (P,): diag(M) = Σ_n w_n g_n².
    covariance (P,): diag(C) = Σ_n w_n (g_n − ḡ)², >= 0. Units (loss / parameter)². chunk_size: examples per
    vmap pass; wall_seconds: elapsed time.
    """

    mean_gradient: torch.Tensor
    second_moment: torch.Tensor
    covariance: torch.Tensor
    num_examples: int
    chunk_size: int
    wall_seconds: float

    @property
    def second_moment_trace(self) -> float:
        """tr(M) = Σ_n w_n ||g_n||²."""
        return float(self.second_moment.sum())

    @property
    def covariance_trace(self) -> float:
        """tr(C) = Σ_n w_n ||g_n − ḡ||² = tr(M) − ||ḡ||²."""
        return float(self.covariance.sum())


def default_chunk_size(risk: EmpiricalRisk, max_bytes: int = DEFAULT_CHUNK_BYTES) -> int:
    """Examples whose per-example gradients fit in `max_bytes` (at least 1)."""
    itemsize = torch.empty((), dtype=risk.dtype).element_size()
    return max(1, max_bytes // (risk.size * itemsize))


def gradient_moment_diagonals(risk: EmpiricalRisk, chunk_size: int | None = None) -> GradientMomentDiagonals:
    """diag(M), diag(C), ḡ and hence tr(M), tr(C) exactly, `chunk_size` examples at a time (default: as many
    as fit in 256 MiB of per-example gradients). Raises PerSampleGradientsUndefined for batch norm on batch
    statistics."""
    require_per_sample_gradients(risk)
    start = time.perf_counter()
    size = default_chunk_size(risk) if chunk_size is None else chunk_size
    decay = decay_gradient(risk)
    total = 0.0
    mean = torch.zeros(risk.size, dtype=torch.float64, device=risk.device)
    centred = torch.zeros_like(mean)
    for chunk in example_chunks(risk, size):
        w = chunk.weights.to(torch.float64)
        weight = float(w.sum())
        if weight == 0.0:
            continue
        G = per_sample_gradients(risk, chunk).to(torch.float64)
        chunk_mean = (w @ G) / weight
        chunk_centred = w @ G.sub_(chunk_mean).pow_(2)  # in place: one n × P buffer per chunk
        # Chan, Golub & LeVeque (1979): merge two weighted (mean, centred sum of squares) summaries.
        delta = chunk_mean - mean
        merged = total + weight
        mean += delta * (weight / merged)
        centred += chunk_centred + delta.pow(2) * (total * weight / merged)
        total = merged
    covariance = centred / total
    if decay is not None:  # the same shift d for every example: it moves the mean, never the covariance
        mean += decay.to(torch.float64)
    return GradientMomentDiagonals(
        mean_gradient=mean,
        second_moment=covariance + mean.pow(2),
        covariance=covariance,
        num_examples=sum(b[0].shape[0] for b in risk.batches),
        chunk_size=size,
        wall_seconds=time.perf_counter() - start,
    )
