"""Null models for eigenvector localization.

* Random: a uniformly random unit vector in R^P (a normalized Gaussian). Writing ``g = r u`` with
  ``r = ||g||`` independent of ``u``, ``E[g_j⁴] = E[r⁴] E[u_j⁴]``, i.e. ``3 = P(P + 2) E[u_j⁴]``, hence
  ``E[IPR] = Σ_j E[u_j⁴] = 3 / (P + 2)``.
* Architecture-induced: eigenvectors of the Hessian at random initializations of the same architecture;
  their IPR (:func:`~hessdyn.trajectory.localization.ipr`) is what the architecture alone produces, the
  right baseline for "did training localize the top eigenvectors?". The analysis computes it
  (hessdyn.analysis.nulls), since it needs the model and the eigensolver.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hessdyn.trajectory.localization import ipr

_CHUNK_ENTRIES = 2**22  # bounds the memory of the random null: samples per chunk × P


def expected_random_ipr(size: int) -> float:
    """Exact ``E[IPR] = 3 / (P + 2)`` of a uniformly random unit vector in R^P."""
    if size < 1:
        raise ValueError(f"P must be positive, got {size}")
    return 3.0 / (size + 2.0)


@dataclass(frozen=True)
class IprSummary:
    """Summary of IPR values (ignoring NaN): mean, standard deviation (ddof=1), 2.5/50/97.5% quantiles."""

    mean: float
    std: float
    q025: float
    median: float
    q975: float
    count: int

    @classmethod
    def of(cls, values: np.ndarray) -> IprSummary:
        finite = values[np.isfinite(values)]
        if finite.shape[0] == 0:
            return cls(np.nan, np.nan, np.nan, np.nan, np.nan, 0)
        q025, median, q975 = np.quantile(finite, [0.025, 0.5, 0.975])
        std = float(np.std(finite, ddof=1)) if finite.shape[0] > 1 else np.nan
        return cls(float(np.mean(finite)), std, float(q025), float(median), float(q975), int(finite.shape[0]))


@dataclass(frozen=True)
class RandomIprNull:
    """IPR of ``num_samples`` uniformly random unit vectors in R^P drawn from a seeded generator."""

    size: int  # P
    seed: int
    samples: np.ndarray  # (num_samples,)
    summary: IprSummary
    expected: float  # exact 3 / (P + 2)

    @property
    def standard_error(self) -> float:
        """Standard error of ``summary.mean`` as an estimate of ``expected``."""
        return self.summary.std / np.sqrt(self.summary.count)


def random_ipr_null(
    size: int, *, num_samples: int = 1000, seed: int = 0, device: torch.device | str = "cpu"
) -> RandomIprNull:
    """Sample the IPR of ``num_samples`` uniformly random unit vectors in R^``size`` (float64)."""
    if num_samples < 1:
        raise ValueError(f"num_samples must be positive, got {num_samples}")
    generator = torch.Generator(device=device).manual_seed(seed)
    chunk = max(1, _CHUNK_ENTRIES // size)
    values = []
    for start in range(0, num_samples, chunk):
        rows = min(chunk, num_samples - start)
        gaussian = torch.randn(rows, size, generator=generator, dtype=torch.float64, device=device)
        values.append(ipr(gaussian))
    samples = np.concatenate(values)
    return RandomIprNull(size, seed, samples, IprSummary.of(samples), expected_random_ipr(size))
