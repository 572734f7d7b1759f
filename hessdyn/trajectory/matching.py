"""Matching eigenvectors across two checkpoints, displacement per eigenvector, crossings.

Notation: ``v_i`` (rank ``i`` at t, ``i < k_a``) and ``w_j`` (rank ``j`` at t', ``j < k_b``) are unit rows;
``O_ij = <v_i, w_j>``. Every displacement is ``d = 2(1 − o)`` of an overlap ``o ∈ [0, 1]`` beside it: 0 for
identical (or sign-flipped) vectors, 2 for orthogonal ones, so the mean displacement over ranks is
``2(1 − mean overlap)``.

* **Matching.** ``π`` is the Hungarian assignment maximizing ``Σ_i O_{i,π(i)}²``, so that a change of
  eigenvalue order (a crossing) does not masquerade as motion.
* **Plain matched displacement** ``d_i = 2(1 − o_i)``, ``o_i = |O_{i,π(i)}|``: one vector against its match.
* **Cluster-aware matched displacement** ``d^c_i = 2(1 − o^c_i)``. With ``A`` the degenerate cluster of
  ``i`` at t and ``B`` that of ``π(i)`` at t' (:func:`~hessdyn.trajectory.clusters.degenerate_clusters`,
  singletons included), and ``P_S`` the orthogonal projector on the span of the vectors ``S``::

      o^c_i = ||P_B v_i||        if |B| > 1   (v_i need only lie in its match's cluster span)
            = ||P_A w_π(i)||     if |B| = 1 < |A|   (the match need only lie in i's cluster span)
            = |<v_i, w_π(i)>|    if |A| = |B| = 1   (= o_i)

  so a rotation inside a degenerate cluster is not motion, and ``o_i ≤ o^c_i ≤ 1``. When the whole
  cluster ``A`` is assigned onto a cluster ``B`` of the same size, ``Σ_{i∈A} (o^c_i)² = tr(P_A P_B)``: the
  cluster's total does not depend on the (arbitrary) basis the solver returned. Clusters are *not* merged
  through the assignment: ``A`` and ``B`` are the clusters of ``i`` and ``π(i)`` alone.
* **Rank-by-rank displacement** ``2(1 − |O_ii|)``: no matching, a crossing shows as motion.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from hessdyn.trajectory._blocks import ArrayLike, as_block, as_eigenvalues, to_numpy
from hessdyn.trajectory.clusters import (
    DEFAULT_CLUSTER_RTOL,
    Clusters,
    cluster_of,
    degenerate_clusters,
    singleton_clusters,
)

# |o|² > 1/2 means the vector has more than half its mass on its match, which makes that match the unique
# largest overlap in both its row and its column: an unambiguous identification.
DEFAULT_CROSSING_MIN_OVERLAP = math.sqrt(0.5)


@dataclass(frozen=True)
class Crossing:
    """A confidently matched pair whose rank changed: rank ``rank_a`` at t became rank ``rank_b`` at t'.

    Reported only when both ranks are outside degenerate clusters (inside one, order is arbitrary).
    """

    rank_a: int
    rank_b: int
    overlap: float  # |<v_rank_a(t), v_rank_b(t')>|


@dataclass(frozen=True)
class MatchedGroup:
    """One degenerate cluster (at t or at t') and the ranks its members are assigned to at the other time.

    A cluster ``A`` at t gives ``(A, π(A))``; a cluster ``B`` at t' gives ``(π⁻¹(B), B)``; identical pairs are
    listed once. ``subspace_overlap = ||P_a P_b||_F² / min(|a|, |b|)`` (1 when the smaller span lies in the
    larger). Groups are not chained further through the assignment.
    """

    ranks_a: tuple[int, ...]
    ranks_b: tuple[int, ...]
    subspace_overlap: float


@dataclass(frozen=True)
class EigenvectorMatch:
    """Comparison of the eigenvector blocks of two checkpoints, t (``a``) and t' (``b``); see the module
    docstring for the definitions.

    Arrays indexed by rank at t have length ``k_a`` (NaN where rank ``i`` is unassigned, ``k_a > k_b``);
    rank-by-rank arrays have length ``min(k_a, k_b)``. Ranks are 0-based here; the analysis turns them into
    the 1-based rows of trajectory.csv and events.csv (hessdyn.analysis.tables).
    """

    matched: np.ndarray  # (k_a,) int: π(i), -1 if unassigned
    plain_overlaps: np.ndarray  # (k_a,) o_i = |<v_i, w_π(i)>|
    plain_displacements: np.ndarray  # (k_a,) 2(1 − o_i)
    cluster_overlaps: np.ndarray  # (k_a,) o^c_i: ||P_B v_i||, ||P_A w_π(i)|| or o_i (module docstring)
    cluster_displacements: np.ndarray  # (k_a,) 2(1 − o^c_i)
    rank_overlaps: np.ndarray  # (min k,) |<v_i, w_i>|, no matching
    rank_displacements: np.ndarray  # (min k,) 2(1 − rank_overlaps)
    overlap_matrix: np.ndarray  # (k_a, k_b) signed <v_i, w_j>
    clusters_a: Clusters  # degenerate clusters at t, singletons included
    clusters_b: Clusters
    cluster_groups: tuple[MatchedGroup, ...]  # one per degenerate cluster, see MatchedGroup
    crossings: tuple[Crossing, ...]

    @property
    def mean_plain_overlap(self) -> float:
        """Mean over assigned ranks at t of ``o_i`` (1 = no motion); ``2(1 − ·)`` is the mean of
        ``plain_displacements``."""
        return float(np.nanmean(self.plain_overlaps))

    @property
    def mean_cluster_overlap(self) -> float:
        """Mean over assigned ranks at t of ``o^c_i``; ``2(1 − ·)`` is the mean of ``cluster_displacements``."""
        return float(np.nanmean(self.cluster_overlaps))


def match_eigenvectors(
    vectors_a: ArrayLike,
    vectors_b: ArrayLike,
    eigenvalues_a: ArrayLike | None = None,
    eigenvalues_b: ArrayLike | None = None,
    *,
    cluster_rtol: float = DEFAULT_CLUSTER_RTOL,
    cluster_atol: float = 0.0,
    crossing_min_overlap: float = DEFAULT_CROSSING_MIN_OVERLAP,
) -> EigenvectorMatch:
    """Match the eigenvectors of checkpoint t (``a``) to those of t' (``b``) and measure their motion.

    Args:
        vectors_a: ``(k_a, P)`` eigenvectors at t (rows, renormalized defensively).
        vectors_b: ``(k_b, P)`` eigenvectors at t'.
        eigenvalues_a, eigenvalues_b: ``(k,)`` in rank order; without them no clusters are formed.
        cluster_rtol, cluster_atol: degeneracy tolerance, see :func:`degenerate_clusters`.
        crossing_min_overlap: a rank change is reported as a crossing only if the matched ``|overlap|``
            reaches this (default ``sqrt(1/2)``); weaker matches are a vector leaving or entering the top-k.

    Returns both the plain Hungarian displacement ``2(1 − |<v_i, w_π(i)>|)`` and the cluster-aware one
    ``2(1 − o^c_i)`` (module docstring), each beside the overlap it is made of.
    Clusters cut by the top-k boundary (λ_k ≈ λ_{k+1}) cannot be detected and will show spurious
    displacement in both.
    """
    block_a = as_block(vectors_a)
    block_b = as_block(vectors_b)
    if block_a.shape[1] != block_b.shape[1]:
        raise ValueError(f"blocks live in different spaces: P={block_a.shape[1]} vs P={block_b.shape[1]}")
    block_b = block_b.to(block_a.device)
    return match_from_grams(
        overlap=to_numpy(block_a @ block_b.T),
        gram_a=to_numpy(block_a @ block_a.T),
        gram_b=to_numpy(block_b @ block_b.T),
        eigenvalues_a=eigenvalues_a,
        eigenvalues_b=eigenvalues_b,
        cluster_rtol=cluster_rtol,
        cluster_atol=cluster_atol,
        crossing_min_overlap=crossing_min_overlap,
    )


def match_from_grams(
    overlap: np.ndarray,
    gram_a: np.ndarray,
    gram_b: np.ndarray,
    eigenvalues_a: ArrayLike | None = None,
    eigenvalues_b: ArrayLike | None = None,
    *,
    cluster_rtol: float = DEFAULT_CLUSTER_RTOL,
    cluster_atol: float = 0.0,
    crossing_min_overlap: float = DEFAULT_CROSSING_MIN_OVERLAP,
) -> EigenvectorMatch:
    """:func:`match_eigenvectors` from precomputed inner products of unit rows.

    ``overlap = V_a V_bᵀ`` ``(k_a, k_b)``, ``gram_a = V_a V_aᵀ``, ``gram_b = V_b V_bᵀ``. Used when many
    pairs share blocks (two-time correlations) so that no ``P``-sized work is repeated.
    """
    k_a, k_b = overlap.shape
    clusters_a = _clusters(as_eigenvalues(eigenvalues_a, k_a), k_a, cluster_rtol, cluster_atol)
    clusters_b = _clusters(as_eigenvalues(eigenvalues_b, k_b), k_b, cluster_rtol, cluster_atol)

    rows, cols = linear_sum_assignment(overlap**2, maximize=True)
    matched = np.full(k_a, -1, dtype=np.int64)
    matched[rows] = cols
    plain = np.full(k_a, np.nan)
    plain[rows] = np.abs(overlap[rows, cols])
    cluster = _cluster_overlaps(overlap, gram_a, gram_b, clusters_a, clusters_b, matched, plain)

    k = min(k_a, k_b)
    rank_overlaps = np.abs(np.diagonal(overlap)[:k]).copy()
    return EigenvectorMatch(
        matched=matched,
        plain_overlaps=plain,
        plain_displacements=2.0 * (1.0 - plain),
        cluster_overlaps=cluster,
        cluster_displacements=2.0 * (1.0 - cluster),
        rank_overlaps=rank_overlaps,
        rank_displacements=2.0 * (1.0 - rank_overlaps),
        overlap_matrix=np.asarray(overlap, dtype=np.float64),
        clusters_a=clusters_a,
        clusters_b=clusters_b,
        cluster_groups=_cluster_groups(overlap, gram_a, gram_b, clusters_a, clusters_b, matched),
        crossings=_crossings(clusters_a, clusters_b, matched, plain, crossing_min_overlap),
    )


def _clusters(values: np.ndarray | None, k: int, rtol: float, atol: float) -> Clusters:
    if values is None:
        return singleton_clusters(k)
    return degenerate_clusters(values, rtol=rtol, atol=atol)


def _cluster_overlaps(
    overlap: np.ndarray,
    gram_a: np.ndarray,
    gram_b: np.ndarray,
    clusters_a: Clusters,
    clusters_b: Clusters,
    matched: np.ndarray,
    plain: np.ndarray,
) -> np.ndarray:
    """``o^c_i`` (module docstring) with ``A`` ∋ i at t and ``B`` ∋ π(i) at t'.

    ``||P_S x||² = xᵀV_Sᵀ (V_S V_Sᵀ)⁺ V_S x`` from the inner products: the Gram pseudo-inverse keeps it the
    projection on the span even when stored rows are not exactly orthonormal. Both clusters singletons:
    ``o^c_i = o_i`` exactly.
    """
    k_a, k_b = overlap.shape
    owner_a, owner_b = cluster_of(clusters_a, k_a), cluster_of(clusters_b, k_b)
    inverse_a = {c: np.linalg.pinv(gram_a[np.ix_(c, c)], hermitian=True) for c in clusters_a if len(c) > 1}
    inverse_b = {c: np.linalg.pinv(gram_b[np.ix_(c, c)], hermitian=True) for c in clusters_b if len(c) > 1}
    result = plain.copy()
    for i, j in enumerate(matched):
        if j < 0:
            continue
        a, b = owner_a[i], owner_b[j]
        if len(b) > 1:
            result[i] = max(result[i], _projection_norm(overlap[i, list(b)], inverse_b[b]))
        elif len(a) > 1:
            result[i] = max(result[i], _projection_norm(overlap[list(a), j], inverse_a[a]))
    return result


def _projection_norm(inner: np.ndarray, gram_inverse: np.ndarray) -> float:
    """``||P_S x||`` from ``inner = V_S x`` and ``(V_S V_Sᵀ)⁺``, clipped to [0, 1] against round-off."""
    return math.sqrt(min(max(float(inner @ gram_inverse @ inner), 0.0), 1.0))


def _cluster_groups(
    overlap: np.ndarray,
    gram_a: np.ndarray,
    gram_b: np.ndarray,
    clusters_a: Clusters,
    clusters_b: Clusters,
    matched: np.ndarray,
) -> tuple[MatchedGroup, ...]:
    """One :class:`MatchedGroup` per degenerate cluster with at least one assigned member, deduplicated."""
    pairs: set[tuple[tuple[int, ...], tuple[int, ...]]] = set()
    for cluster in clusters_a:
        partners = tuple(sorted(int(matched[i]) for i in cluster if matched[i] >= 0))
        if len(cluster) > 1 and partners:
            pairs.add((cluster, partners))
    for cluster in clusters_b:
        preimage = tuple(i for i, j in enumerate(matched) if j in cluster)
        if len(cluster) > 1 and preimage:
            pairs.add((preimage, cluster))
    return tuple(
        MatchedGroup(
            a,
            b,
            subspace_overlap_from_grams(overlap[np.ix_(a, b)], gram_a[np.ix_(a, a)], gram_b[np.ix_(b, b)]),
        )
        for a, b in sorted(pairs)
    )


def _crossings(
    clusters_a: Clusters,
    clusters_b: Clusters,
    matched: np.ndarray,
    plain: np.ndarray,
    min_overlap: float,
) -> tuple[Crossing, ...]:
    """Rank changes of confidently matched vectors outside degenerate clusters (on both sides)."""
    degenerate_a = {rank for cluster in clusters_a if len(cluster) > 1 for rank in cluster}
    degenerate_b = {rank for cluster in clusters_b if len(cluster) > 1 for rank in cluster}
    return tuple(
        Crossing(i, int(j), float(plain[i]))
        for i, j in enumerate(matched)
        if 0 <= j != i and i not in degenerate_a and j not in degenerate_b and plain[i] >= min_overlap
    )


def subspace_overlap_from_grams(overlap: np.ndarray, gram_a: np.ndarray, gram_b: np.ndarray) -> float:
    """``tr(P_A P_B) / min(k_a, k_b)`` from ``overlap = V_a V_bᵀ`` and the Gram matrices of the two blocks.

    The Gram inverses make this the overlap of the spans even when rows are not exactly orthonormal.
    """
    inverse_a = np.linalg.pinv(gram_a, hermitian=True)
    inverse_b = np.linalg.pinv(gram_b, hermitian=True)
    value = float(np.trace(inverse_a @ overlap @ inverse_b @ overlap.T))
    return value / min(overlap.shape)
