"""Near-degenerate clusters of eigenvalues.

Inside a cluster of (nearly) equal eigenvalues the eigenvectors are not individually defined: any rotation
within the cluster's span is an equally valid basis. Trajectory metrics therefore compare such vectors as
a subspace (see :mod:`hessdyn.trajectory.matching`).
"""

from __future__ import annotations

from hessdyn.trajectory._blocks import ArrayLike, as_eigenvalues

DEFAULT_CLUSTER_RTOL = 1e-3


def degenerate_clusters(
    eigenvalues: ArrayLike,
    *,
    rtol: float = DEFAULT_CLUSTER_RTOL,
    atol: float = 0.0,
) -> tuple[tuple[int, ...], ...]:
    """Partition ranks ``0..k-1`` into clusters of consecutive, nearly equal eigenvalues.

    Ranks ``i`` and ``i + 1`` are joined when ``|λ_i − λ_{i+1}| <= atol + rtol · max(|λ_i|, |λ_{i+1}|)``,
    i.e. the relative gap is measured against the larger magnitude of the pair. Joining is chained, so a
    slowly varying run of eigenvalues forms one cluster even if its ends differ by more than ``rtol``.

    Args:
        eigenvalues: ``(k,)`` in rank order (descending for the top of the spectrum).
        rtol: relative gap below which neighbours count as degenerate (dimensionless).
        atol: absolute gap, in the eigenvalues' units, added to the tolerance (helps near zero).

    Returns:
        Every rank exactly once, as tuples of consecutive ranks; singletons included.
    """
    if rtol < 0 or atol < 0:
        raise ValueError(f"tolerances must be non-negative, got rtol={rtol}, atol={atol}")
    values = as_eigenvalues(eigenvalues, expected=len(eigenvalues))
    assert values is not None
    clusters: list[list[int]] = []
    for rank, value in enumerate(values):
        if rank > 0:
            previous = values[rank - 1]
            tolerance = atol + rtol * max(abs(previous), abs(value))
            if abs(previous - value) <= tolerance:
                clusters[-1].append(rank)
                continue
        clusters.append([rank])
    return tuple(tuple(cluster) for cluster in clusters)


def singleton_clusters(k: int) -> tuple[tuple[int, ...], ...]:
    """The trivial partition of ``k`` ranks, used when no eigenvalues are given."""
    return tuple((rank,) for rank in range(k))
