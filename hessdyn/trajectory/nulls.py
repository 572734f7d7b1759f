"""Null models for eigenvector localization.

* Random: a uniformly random unit vector in R^P (a normalized Gaussian). Writing ``g = r u`` with
  ``r = ||g||`` independent of ``u``, ``E[g_j⁴] = E[r⁴] E[u_j⁴]``, i.e. ``3 = P(P + 2) E[u_j⁴]``, hence
  ``E[IPR] = Σ_j E[u_j⁴] = 3 / (P + 2)``.
* Architecture-induced: eigenvectors of the Hessian at random initializations of the same architecture
  (computed elsewhere with the eigensolver); their IPR is what the architecture alone produces, which is
  the right baseline for "did training localize the top eigenvectors?".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from hessdyn.trajectory._blocks import ArrayLike, as_block
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

    def table(self) -> pd.DataFrame:
        """Rows ``null, seed, sample, rank, ipr, ipr_normalized`` (rank is empty: no spectrum)."""
        n = self.samples.shape[0]
        return pd.DataFrame(
            {
                "null": "random",
                "seed": self.seed,
                "sample": np.arange(n),
                "rank": pd.array([pd.NA] * n, dtype="Int64"),
                "ipr": self.samples,
                "ipr_normalized": self.size * self.samples / 3.0,
            }
        )


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


@dataclass(frozen=True)
class ArchitectureIprNull:
    """IPR of Hessian eigenvectors at random initializations, one ``(k, P)`` block per seed.

    ``ipr[s, i]`` is the IPR of rank ``i`` at seed ``seeds[s]`` (NaN where a seed has fewer ranks).
    """

    size: int  # P
    seeds: tuple[int, ...]
    ipr: np.ndarray  # (num_seeds, k_max)
    overall: IprSummary  # over all seeds and ranks

    @property
    def per_rank(self) -> pd.DataFrame:
        """Rows ``rank, mean, std, q025, median, q975, count`` summarizing each rank over seeds."""
        rows = []
        for rank in range(self.ipr.shape[1]):
            summary = IprSummary.of(self.ipr[:, rank])
            rows.append({"rank": rank, **summary.__dict__})
        return pd.DataFrame(rows)

    def table(self) -> pd.DataFrame:
        """Rows ``null, seed, sample, rank, ipr, ipr_normalized`` for every seed and rank."""
        num_seeds, k = self.ipr.shape
        values = self.ipr.reshape(-1)
        frame = pd.DataFrame(
            {
                "null": "architecture",
                "seed": np.repeat(np.array(self.seeds), k),
                "sample": np.repeat(np.arange(num_seeds), k),
                "rank": pd.array(np.tile(np.arange(k), num_seeds), dtype="Int64"),
                "ipr": values,
                "ipr_normalized": self.size * values / 3.0,
            }
        )
        return frame[np.isfinite(values)].reset_index(drop=True)


def architecture_ipr_null(
    blocks: Sequence[ArrayLike], seeds: Sequence[int] | None = None
) -> ArchitectureIprNull:
    """Summarize the IPR of eigenvector blocks computed at random initializations (one per seed)."""
    if not blocks:
        raise ValueError("no eigenvector blocks given")
    seeds = tuple(range(len(blocks))) if seeds is None else tuple(int(s) for s in seeds)
    if len(seeds) != len(blocks):
        raise ValueError(f"{len(seeds)} seeds for {len(blocks)} blocks")
    per_seed, sizes = [], set()
    for block in blocks:
        block = as_block(block)
        per_seed.append(ipr(block))
        sizes.add(block.shape[1])
    if len(sizes) != 1:
        raise ValueError(f"blocks have different P: {sorted(sizes)}")
    k_max = max(values.shape[0] for values in per_seed)
    table = np.full((len(blocks), k_max), np.nan)
    for row, values in enumerate(per_seed):
        table[row, : values.shape[0]] = values
    return ArchitectureIprNull(sizes.pop(), seeds, table, IprSummary.of(table.reshape(-1)))
