"""Seeded random probe vectors and float64 products, shared by the stochastic estimators."""

from __future__ import annotations

import math

import torch

from hessdyn.curvature.operator import CurvatureOperator


def rademacher(n: int, m: int, generator: torch.Generator, device: torch.device | str) -> torch.Tensor:
    """(n, m) float64 matrix of independent ±1 entries, drawn on the CPU so results do not depend on device.

    Column i is the i-th n-vector of the generator's stream, so drawing m columns at once or one at a time
    gives the same probes (results do not depend on a block size).
    """
    signs = torch.randint(0, 2, (m, n), generator=generator, dtype=torch.int8) * 2 - 1
    return signs.T.to(device=device, dtype=torch.float64)


def apply64(op: CurvatureOperator, V: torch.Tensor) -> torch.Tensor:
    """op @ V for a float64 (P, m) block, computed in op.dtype and returned in float64."""
    return op.matmat(V.to(op.dtype)).to(torch.float64)


def mean_and_se(samples: torch.Tensor) -> tuple[float, float]:
    """Sample mean and its standard error of the mean (ddof = 1)."""
    n = samples.numel()
    return float(samples.mean()), float(samples.std(unbiased=True)) / math.sqrt(n)
