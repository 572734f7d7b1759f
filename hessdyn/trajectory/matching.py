"""Matching eigenvectors across two checkpoints, displacement per eigenvector, crossings.

Displacement is sign-invariant: ``d = 2(1 − |<v_i(t), v_j(t')>|)``, 0 for identical (or sign-flipped) vectors,
2 for orthogonal ones. Vectors are matched by a Hungarian assignment that maximizes the summed squared
overlap, so a change of eigenvalue order (a crossing) does not masquerade as motion. Near-degenerate
eigenvalues are compared as subspaces: a vector is compared with its projection on the span of the
vectors it is grouped with at the other checkpoint, ``d = 2(1 − ||P v||)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from hessdyn.trajectory._blocks import ArrayLike, as_block, as_eigenvalues, to_numpy
from hessdyn.trajectory.clusters import DEFAULT_CLUSTER_RTOL, degenerate_clusters, singleton_clusters

# |o|² > 1/2 means the vector has more than half its mass on its match, which makes that match the unique
# largest overlap in both its row and its column: an unambiguous identification.
DEFAULT_CROSSING_MIN_OVERLAP = math.sqrt(0.5)


@dataclass(frozen=True)
class Crossing:
    """A confidently matched pair whose rank changed: rank ``rank_a`` at t became rank ``rank_b`` at t'."""

    rank_a: int
    rank_b: int
    overlap: float  # |<v_rank_a(t), v_rank_b(t')>|


@dataclass(frozen=True)
class MatchedGroup:
    """Ranks compared as one subspace because a degenerate cluster on either side links them.

    ``subspace_overlap`` is ``||P_A P_B||_F² / min(|A|, |B|)`` (1 when the smaller span lies in the larger).
    """

    ranks_a: tuple[int, ...]
    ranks_b: tuple[int, ...]
    subspace_overlap: float


@dataclass(frozen=True)
class EigenvectorMatch:
    """Comparison of the eigenvector blocks of two checkpoints, t (``a``) and t' (``b``).

    Arrays indexed by rank at t have length ``k_a``; rank-by-rank arrays have length ``min(k_a, k_b)``.
    """

    matched: np.ndarray  # (k_a,) int: rank at t' assigned to rank i at t, -1 if unassigned (k_a > k_b)
    overlaps: np.ndarray  # (k_a,) |<v_i(t), v_matched(t')>|, NaN if unassigned
    projected_overlaps: np.ndarray  # (k_a,) ||P_B v_i(t)||, B: t' vectors in i's group
    displacements: np.ndarray  # (k_a,) cluster-aware matched displacement 2(1 − projected_overlaps)
    rank_overlaps: np.ndarray  # (min k,) |<v_i(t), v_i(t')>|, no matching
    rank_displacements: np.ndarray  # (min k,) 2(1 − rank_overlaps)
    overlap_matrix: np.ndarray  # (k_a, k_b) signed <v_i(t), v_j(t')>
    clusters_a: tuple[tuple[int, ...], ...]  # degenerate clusters at t, singletons included
    clusters_b: tuple[tuple[int, ...], ...]
    cluster_groups: tuple[MatchedGroup, ...]  # only groups containing a degenerate cluster
    crossings: tuple[Crossing, ...]

    @property
    def mean_matched_overlap(self) -> float:
        """Mean over ranks at t of the cluster-aware matched overlap (1 = no motion)."""
        return float(np.nanmean(self.projected_overlaps))

    def table(self) -> pd.DataFrame:
        """One row per rank at t: rank, matched_rank, overlap, projected_overlap, displacement,
        rank_overlap, rank_displacement (NaN beyond ``min(k_a, k_b)``)."""
        k_a = self.matched.shape[0]
        pad = np.full(k_a, np.nan)
        rank_overlap, rank_displacement = pad.copy(), pad.copy()
        rank_overlap[: self.rank_overlaps.shape[0]] = self.rank_overlaps
        rank_displacement[: self.rank_displacements.shape[0]] = self.rank_displacements
        return pd.DataFrame(
            {
                "rank": np.arange(k_a),
                "matched_rank": self.matched,
                "overlap": self.overlaps,
                "projected_overlap": self.projected_overlaps,
                "displacement": self.displacements,
                "rank_overlap": rank_overlap,
                "rank_displacement": rank_displacement,
            }
        )

    def events(self, step_a: int, step_b: int) -> pd.DataFrame:
        """Crossings and degenerate-cluster groups as rows ``step_a, step_b, kind, ranks, detail``."""
        rows = [
            {
                "step_a": step_a,
                "step_b": step_b,
                "kind": "crossing",
                "ranks": f"{c.rank_a}->{c.rank_b}",
                "detail": f"overlap={c.overlap:.6g}",
            }
            for c in self.crossings
        ]
        rows += [
            {
                "step_a": step_a,
                "step_b": step_b,
                "kind": "cluster",
                "ranks": f"{_join(g.ranks_a)}->{_join(g.ranks_b)}",
                "detail": f"subspace_overlap={g.subspace_overlap:.6g}",
            }
            for g in self.cluster_groups
        ]
        return pd.DataFrame(rows, columns=["step_a", "step_b", "kind", "ranks", "detail"])


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

    Grouping: ranks at t and t' are linked when they are assigned to each other or share a degenerate cluster;
    each connected set is a group, and ``projected_overlaps[i] = ||P_B v_i||`` with ``B`` the t'-vectors of
    i's group. A group of one vector on each side reduces to ``|<v_i, v_j>|``. Clusters cut by the top-k
    boundary (λ_k ≈ λ_{k+1}) cannot be detected and will show spurious displacement.
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
    values_a = as_eigenvalues(eigenvalues_a, k_a)
    values_b = as_eigenvalues(eigenvalues_b, k_b)
    clusters_a = _clusters(values_a, k_a, cluster_rtol, cluster_atol)
    clusters_b = _clusters(values_b, k_b, cluster_rtol, cluster_atol)

    rows, cols = linear_sum_assignment(overlap**2, maximize=True)
    matched = np.full(k_a, -1, dtype=np.int64)
    matched[rows] = cols
    overlaps = np.full(k_a, np.nan)
    overlaps[rows] = np.abs(overlap[rows, cols])

    groups = _groups(k_a, k_b, clusters_a, clusters_b, matched)
    projected = np.full(k_a, np.nan)
    cluster_groups: list[MatchedGroup] = []
    for ranks_a, ranks_b in groups:
        if not ranks_b:
            continue
        b = list(ranks_b)
        gram_inverse = np.linalg.pinv(gram_b[np.ix_(b, b)], hermitian=True)
        for i in ranks_a:
            o = overlap[i, b]
            projected[i] = math.sqrt(min(max(float(o @ gram_inverse @ o), 0.0), 1.0))
        if len(ranks_a) > 1 or len(ranks_b) > 1:
            a = list(ranks_a)
            cluster_groups.append(
                MatchedGroup(
                    ranks_a,
                    ranks_b,
                    subspace_overlap_from_grams(
                        overlap[np.ix_(a, b)], gram_a[np.ix_(a, a)], gram_b[np.ix_(b, b)]
                    ),
                )
            )

    in_group_of_two = {ranks_a[0] for ranks_a, ranks_b in groups if len(ranks_a) == 1 and len(ranks_b) == 1}
    crossings = tuple(
        Crossing(int(i), int(matched[i]), float(overlaps[i]))
        for i in range(k_a)
        if matched[i] >= 0
        and matched[i] != i
        and i in in_group_of_two
        and overlaps[i] >= crossing_min_overlap
    )

    k = min(k_a, k_b)
    rank_overlaps = np.abs(np.diagonal(overlap)[:k]).copy()
    return EigenvectorMatch(
        matched=matched,
        overlaps=overlaps,
        projected_overlaps=projected,
        displacements=2.0 * (1.0 - projected),
        rank_overlaps=rank_overlaps,
        rank_displacements=2.0 * (1.0 - rank_overlaps),
        overlap_matrix=np.asarray(overlap, dtype=np.float64),
        clusters_a=clusters_a,
        clusters_b=clusters_b,
        cluster_groups=tuple(cluster_groups),
        crossings=crossings,
    )


def _clusters(values: np.ndarray | None, k: int, rtol: float, atol: float) -> tuple[tuple[int, ...], ...]:
    if values is None:
        return singleton_clusters(k)
    return degenerate_clusters(values, rtol=rtol, atol=atol)


def _groups(
    k_a: int,
    k_b: int,
    clusters_a: tuple[tuple[int, ...], ...],
    clusters_b: tuple[tuple[int, ...], ...],
    matched: np.ndarray,
) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Connected components of ranks linked by a shared cluster or by the assignment, ordered by first rank.

    Nodes ``0..k_a-1`` are ranks at t, ``k_a..k_a+k_b-1`` ranks at t'.
    """
    parent = list(range(k_a + k_b))

    def find(node: int) -> int:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    def union(x: int, y: int) -> None:
        parent[find(x)] = find(y)

    for cluster in clusters_a:
        for rank in cluster[1:]:
            union(cluster[0], rank)
    for cluster in clusters_b:
        for rank in cluster[1:]:
            union(k_a + cluster[0], k_a + rank)
    for i, j in enumerate(matched):
        if j >= 0:
            union(i, k_a + int(j))

    members: dict[int, tuple[list[int], list[int]]] = {}
    for node in range(k_a + k_b):
        side_a, side_b = members.setdefault(find(node), ([], []))
        (side_a if node < k_a else side_b).append(node if node < k_a else node - k_a)
    return sorted(
        ((tuple(a), tuple(b)) for a, b in members.values()),
        key=lambda group: (group[0][0] if group[0] else k_a, group[1][0] if group[1] else k_b),
    )


def subspace_overlap_from_grams(overlap: np.ndarray, gram_a: np.ndarray, gram_b: np.ndarray) -> float:
    """``tr(P_A P_B) / min(k_a, k_b)`` from ``overlap = V_a V_bᵀ`` and the Gram matrices of the two blocks.

    The Gram inverses make this the overlap of the spans even when rows are not exactly orthonormal.
    """
    inverse_a = np.linalg.pinv(gram_a, hermitian=True)
    inverse_b = np.linalg.pinv(gram_b, hermitian=True)
    value = float(np.trace(inverse_a @ overlap @ inverse_b @ overlap.T))
    return value / min(overlap.shape)


def _join(ranks: tuple[int, ...]) -> str:
    return ",".join(str(rank) for rank in ranks) if ranks else "-"
