"""Two-time (aging) correlations of eigenvector blocks along a training trajectory.

As for glasses, ``C(t_w, t_w + τ)`` compares the state at a waiting time ``t_w`` with the state a lag ``τ``
later; aging shows as a decay in τ that slows down with ``t_w``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from hessdyn.trajectory._blocks import ArrayLike, as_block, to_numpy
from hessdyn.trajectory.clusters import DEFAULT_CLUSTER_RTOL
from hessdyn.trajectory.matching import match_from_grams, subspace_overlap_from_grams

TwoTimeMetric = Literal["subspace_overlap", "mean_matched_overlap_plain", "mean_matched_overlap_cluster"]
TWO_TIME_METRICS = ("subspace_overlap", "mean_matched_overlap_plain", "mean_matched_overlap_cluster")
SeriesKind = Literal["consecutive", "first", "last"]


@dataclass(frozen=True)
class TwoTimeCorrelation:
    """``C(t_w, t)`` for every ordered pair of checkpoints ``t_w <= t``.

    ``matrix[i, j]`` is ``C(steps[i], steps[j])`` for ``j >= i``; entries below the diagonal are NaN because
    the matched overlap is not symmetric in its two arguments (the subspace overlap is).
    """

    metric: str
    steps: np.ndarray  # (n,) training steps of the checkpoints, ascending
    matrix: np.ndarray  # (n, n)

    def table(self) -> pd.DataFrame:
        """Tidy rows ``t_w, t, tau, value`` for every pair ``t_w <= t`` (diagonal included)."""
        i, j = np.triu_indices(self.steps.shape[0])
        return pd.DataFrame(
            {
                "t_w": self.steps[i],
                "t": self.steps[j],
                "tau": self.steps[j] - self.steps[i],
                "value": self.matrix[i, j],
            }
        )

    def series(self, kind: SeriesKind) -> pd.DataFrame:
        """Rows ``step_a, step_b, value``: consecutive pairs, every checkpoint against the first, or every
        checkpoint against the last (``step_a <= step_b`` always)."""
        n = self.steps.shape[0]
        if kind == "consecutive":
            i, j = np.arange(n - 1), np.arange(1, n)
        elif kind == "first":
            i, j = np.zeros(n, dtype=np.int64), np.arange(n)
        elif kind == "last":
            i, j = np.arange(n), np.full(n, n - 1)
        else:
            raise ValueError(f"unknown series kind {kind!r}; expected consecutive, first or last")
        return pd.DataFrame({"step_a": self.steps[i], "step_b": self.steps[j], "value": self.matrix[i, j]})


def two_time_correlation(
    checkpoints: Sequence[tuple[int, ArrayLike]],
    metric: TwoTimeMetric = "subspace_overlap",
    *,
    eigenvalues: Sequence[ArrayLike] | None = None,
    cluster_rtol: float = DEFAULT_CLUSTER_RTOL,
    cluster_atol: float = 0.0,
) -> TwoTimeCorrelation:
    """Two-time correlation of eigenvector blocks over all checkpoint pairs.

    Args:
        checkpoints: ``(step, V)`` pairs with ``V`` of shape ``(k, P)``; sorted by step here.
        metric: ``"subspace_overlap"`` (``||P_a P_b||_F² / k``, see
            :class:`~hessdyn.trajectory.subspace.SubspaceComparison`), ``"mean_matched_overlap_plain"``
            (mean over ranks of the Hungarian-matched ``|<v_i, w_π(i)>|``) or ``"mean_matched_overlap_cluster"``
            (mean of the cluster-aware ``o^c_i``); see :mod:`~hessdyn.trajectory.matching`. The mean matched
            displacement is ``2(1 − C)`` of the matched metrics.
        eigenvalues: per checkpoint, in the same order as ``checkpoints``; used for degenerate clusters.
        cluster_rtol, cluster_atol: degeneracy tolerance for the cluster-aware overlap.

    Only one pair of blocks is converted to float64 at a time, so memory stays ~2 blocks beyond the input.
    """
    if metric not in TWO_TIME_METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {', '.join(TWO_TIME_METRICS)}")
    if not checkpoints:
        raise ValueError("no checkpoints given")
    if eigenvalues is not None and len(eigenvalues) != len(checkpoints):
        raise ValueError(f"{len(eigenvalues)} eigenvalue arrays for {len(checkpoints)} checkpoints")
    order = sorted(range(len(checkpoints)), key=lambda index: checkpoints[index][0])
    steps = np.array([checkpoints[index][0] for index in order], dtype=np.int64)
    if np.unique(steps).shape[0] != steps.shape[0]:
        raise ValueError(f"duplicate checkpoint steps: {steps.tolist()}")
    blocks = [checkpoints[index][1] for index in order]
    values = [eigenvalues[index] for index in order] if eigenvalues is not None else [None] * len(order)

    n = len(blocks)
    matrix = np.full((n, n), np.nan)
    for i in range(n):
        block_i = as_block(blocks[i])
        gram_i = to_numpy(block_i @ block_i.T)
        for j in range(i, n):
            block_j = block_i if j == i else as_block(blocks[j]).to(block_i.device)
            if block_j.shape[1] != block_i.shape[1]:
                raise ValueError(f"checkpoints {steps[i]} and {steps[j]} have different P")
            overlap = to_numpy(block_i @ block_j.T)
            gram_j = gram_i if j == i else to_numpy(block_j @ block_j.T)
            if metric == "subspace_overlap":
                matrix[i, j] = subspace_overlap_from_grams(overlap, gram_i, gram_j)
            else:
                match = match_from_grams(
                    overlap,
                    gram_i,
                    gram_j,
                    values[i],
                    values[j],
                    cluster_rtol=cluster_rtol,
                    cluster_atol=cluster_atol,
                )
                plain = metric == "mean_matched_overlap_plain"
                matrix[i, j] = match.mean_plain_overlap if plain else match.mean_cluster_overlap
    return TwoTimeCorrelation(metric=metric, steps=steps, matrix=matrix)
