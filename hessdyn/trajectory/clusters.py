"""Near-degenerate clusters of eigenvalues.

Inside a cluster of (nearly) equal eigenvalues the eigenvectors are not individually defined: any rotation
within the cluster's span is an equally valid basis. Trajectory metrics therefore compare such vectors as
a subspace (see :mod:`hessdyn.trajectory.matching`).

A cluster must be *tight*, not merely connected: chaining neighbours by their gap alone joins a slowly
varying ladder of eigenvalues (a bulk edge, ranks 11–20 of an MLP's top-20) into one "cluster" whose ends
differ by far more than the tolerance, and a vector's motion inside that span is then not measured at all.
"""

from __future__ import annotations

import numpy as np

from hessdyn.trajectory._blocks import ArrayLike, as_eigenvalues

DEFAULT_CLUSTER_RTOL = 1e-3

Clusters = tuple[tuple[int, ...], ...]


def degenerate_clusters(
    eigenvalues: ArrayLike,
    *,
    rtol: float = DEFAULT_CLUSTER_RTOL,
    atol: float = 0.0,
) -> Clusters:
    """Partition ranks ``0..k-1`` into clusters of consecutive, nearly equal eigenvalues.

    With ``tol(S) = atol + rtol · max_{i∈S} |λ_i|`` for a set of ranks ``S``, a partition into runs of
    consecutive ranks is built in two steps:

    1. neighbour gap: ranks ``i`` and ``i + 1`` may share a cluster only if
       ``|λ_i − λ_{i+1}| ≤ tol({i, i+1})`` (the relative gap to the neighbour);
    2. spread: every cluster ``S`` satisfies ``max_S λ − min_S λ ≤ tol(S)``; a run of step 1 that is wider
       is split at its largest neighbour gap (the first one on ties), recursively, until every piece is
       within its tolerance. So no cluster spans more than ``rtol`` relative, however many small gaps
       chain its members, and the cuts fall where the spectrum is least degenerate.

    Args:
        eigenvalues: ``(k,)`` in rank order (descending for the top of the spectrum).
        rtol: relative tolerance (dimensionless): on the neighbour gap and on a cluster's spread.
        atol: absolute tolerance in the eigenvalues' units, added to both (helps near zero).

    Returns:
        Every rank exactly once, as tuples of consecutive ranks in order; singletons included.
    """
    if rtol < 0 or atol < 0:
        raise ValueError(f"tolerances must be non-negative, got rtol={rtol}, atol={atol}")
    values = as_eigenvalues(eigenvalues, expected=len(eigenvalues))
    assert values is not None
    clusters: list[tuple[int, ...]] = []
    for run in _neighbour_runs(values, rtol, atol):
        clusters.extend(_split_by_spread(values, run, rtol, atol))
    return tuple(clusters)


def singleton_clusters(k: int) -> Clusters:
    """The trivial partition of ``k`` ranks, used when no eigenvalues are given."""
    return tuple((rank,) for rank in range(k))


def cluster_of(clusters: Clusters, k: int) -> list[tuple[int, ...]]:
    """``out[i]``: the cluster holding rank ``i``, for ranks ``0..k-1``."""
    owner: list[tuple[int, ...]] = [()] * k
    for cluster in clusters:
        for rank in cluster:
            owner[rank] = cluster
    return owner


def _tolerance(values: np.ndarray, ranks: tuple[int, ...], rtol: float, atol: float) -> float:
    return atol + rtol * float(np.max(np.abs(values[list(ranks)])))


def _neighbour_runs(values: np.ndarray, rtol: float, atol: float) -> list[tuple[int, ...]]:
    """Maximal runs of consecutive ranks whose neighbour gaps are within tolerance (step 1)."""
    runs: list[list[int]] = []
    for rank in range(values.shape[0]):
        if rank > 0 and abs(values[rank - 1] - values[rank]) <= _tolerance(
            values, (rank - 1, rank), rtol, atol
        ):
            runs[-1].append(rank)
        else:
            runs.append([rank])
    return [tuple(run) for run in runs]


def _split_by_spread(
    values: np.ndarray, run: tuple[int, ...], rtol: float, atol: float
) -> list[tuple[int, ...]]:
    """Split ``run`` at its largest gap until every piece's spread is within its tolerance (step 2)."""
    members = values[list(run)]
    if float(members.max() - members.min()) <= _tolerance(values, run, rtol, atol):
        return [run]
    cut = int(np.argmax(np.abs(np.diff(members)))) + 1
    return _split_by_spread(values, run[:cut], rtol, atol) + _split_by_spread(values, run[cut:], rtol, atol)
