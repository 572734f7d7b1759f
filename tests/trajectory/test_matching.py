"""Matching, displacement, clusters and crossings between two eigenvector blocks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hessdyn.trajectory import degenerate_clusters, match_eigenvectors

EIGENVALUES = np.array([10.0, 7.0, 5.0, 3.0, 1.0])


def test_identical_blocks_have_zero_displacement(block):
    match = match_eigenvectors(block, block, EIGENVALUES, EIGENVALUES)
    np.testing.assert_array_equal(match.matched, np.arange(5))
    np.testing.assert_allclose(match.plain_displacements, 0.0, atol=1e-14)
    np.testing.assert_allclose(match.cluster_displacements, 0.0, atol=1e-14)
    np.testing.assert_allclose(match.rank_displacements, 0.0, atol=1e-14)
    assert match.crossings == ()
    assert match.cluster_groups == ()
    assert match.mean_plain_overlap == pytest.approx(1.0, abs=1e-14)
    assert match.mean_cluster_overlap == pytest.approx(1.0, abs=1e-14)


def test_sign_flips_give_zero_displacement(block):
    signs = torch.tensor([-1.0, 1.0, -1.0, -1.0, 1.0], dtype=torch.float64)
    match = match_eigenvectors(block, signs[:, None] * block)
    np.testing.assert_allclose(match.plain_displacements, 0.0, atol=1e-14)
    np.testing.assert_allclose(match.rank_displacements, 0.0, atol=1e-14)
    np.testing.assert_allclose(np.diagonal(match.overlap_matrix), signs.numpy(), atol=1e-14)


@pytest.mark.parametrize("angle", [0.1, 0.4, 2.0])
def test_rotation_in_a_plane_moves_both_vectors_by_cos_angle(block, angle, rotate_pair):
    rotated = rotate_pair(block, 0, 1, angle)
    match = match_eigenvectors(block, rotated)
    expected = abs(math.cos(angle))
    # |cos| > 1/sqrt(2) keeps the identity assignment; beyond it the rows swap roles
    if expected**2 > 0.5:
        np.testing.assert_array_equal(match.matched, np.arange(5))
        np.testing.assert_allclose(match.plain_overlaps[:2], expected, atol=1e-13)
        np.testing.assert_allclose(match.plain_displacements[:2], 2 * (1 - expected), atol=1e-13)
    np.testing.assert_allclose(match.rank_overlaps[:2], expected, atol=1e-13)
    np.testing.assert_allclose(match.rank_displacements[:2], 2 * (1 - expected), atol=1e-13)
    np.testing.assert_allclose(match.rank_displacements[2:], 0.0, atol=1e-13)


def test_permuted_ranks_are_matched_and_recorded_as_crossings(block):
    permutation = [2, 0, 1, 3, 4]  # rank r at t' holds vector permutation[r] of t
    later = block[permutation] * torch.tensor([1.0, -1.0, 1.0, 1.0, 1.0], dtype=torch.float64)[:, None]
    match = match_eigenvectors(block, later, EIGENVALUES, EIGENVALUES)
    inverse = np.argsort(permutation)
    np.testing.assert_array_equal(match.matched, inverse)
    np.testing.assert_allclose(match.plain_displacements, 0.0, atol=1e-13)
    # rank-by-rank compares different vectors: orthogonal for the three permuted ranks
    np.testing.assert_allclose(match.rank_displacements, [2, 2, 2, 0, 0], atol=1e-13)
    crossings = {(c.rank_a, c.rank_b) for c in match.crossings}
    assert crossings == {(0, 1), (1, 2), (2, 0)}
    assert match.cluster_groups == ()  # no eigenvalue is degenerate


def test_weak_rank_changes_are_not_crossings(block, rotate_pair):
    # rotated by 80°, each vector is closest to the other rank, with |overlap| = cos 10° ≈ 0.985
    later = rotate_pair(block, 0, 1, math.radians(80))
    match = match_eigenvectors(block, later, crossing_min_overlap=0.99)
    np.testing.assert_array_equal(match.matched[:2], [1, 0])
    assert match.plain_overlaps[0] == pytest.approx(math.cos(math.radians(10)), abs=1e-13)
    assert match.crossings == ()
    assert len(match_eigenvectors(block, later).crossings) == 2


def test_rotation_inside_a_degenerate_cluster_is_not_motion(block, rotate_pair):
    values = np.array([10.0, 6.0, 6.0 * (1 + 1e-5), 3.0, 1.0])  # ranks 1, 2 degenerate
    later = rotate_pair(block, 1, 2, 0.7)
    match = match_eigenvectors(block, later, values, values, cluster_rtol=1e-3)
    assert match.clusters_a == ((0,), (1, 2), (3,), (4,))
    np.testing.assert_allclose(match.cluster_displacements, 0.0, atol=1e-13)
    np.testing.assert_allclose(match.plain_displacements[1:3], 2 * (1 - math.cos(0.7)), atol=1e-13)
    np.testing.assert_allclose(match.rank_displacements[1:3], 2 * (1 - math.cos(0.7)), atol=1e-13)
    (group,) = match.cluster_groups
    assert (group.ranks_a, group.ranks_b) == ((1, 2), (1, 2))
    assert group.subspace_overlap == pytest.approx(1.0, abs=1e-13)
    assert match.crossings == ()
    # without eigenvalues the same rotation is motion
    plain = match_eigenvectors(block, later)
    np.testing.assert_allclose(plain.cluster_displacements[1:3], 2 * (1 - math.cos(0.7)), atol=1e-13)


def test_cluster_that_tilts_out_of_its_span_is_compared_by_projection(block, rotate_pair):
    values = np.array([10.0, 6.0, 6.0, 3.0, 1.0])
    # rotate rank 1 by 0.3 towards rank 3 (outside the cluster), then mix ranks 1 and 2
    later = rotate_pair(rotate_pair(block, 1, 3, 0.3), 1, 2, 0.5)
    match = match_eigenvectors(block, later, values, values)
    # the cluster span at t' is span(cos .3 v1 + sin .3 v3, v2): ||P v1|| = cos .3, ||P v2|| = 1
    np.testing.assert_allclose(match.cluster_overlaps[1:3], [math.cos(0.3), 1.0], atol=1e-13)
    np.testing.assert_allclose(match.cluster_displacements[1:3], [2 * (1 - math.cos(0.3)), 0.0], atol=1e-13)
    (group,) = match.cluster_groups
    assert group.subspace_overlap == pytest.approx((math.cos(0.3) ** 2 + 1) / 2, abs=1e-13)
    # the cluster's total is basis-independent: Σ (o^c)² = tr(P_A P_B) = 2 · subspace_overlap
    assert np.sum(match.cluster_overlaps[1:3] ** 2) == pytest.approx(2 * group.subspace_overlap, abs=1e-13)


def test_different_k_leaves_extra_ranks_unmatched(orthonormal_rows):
    big = orthonormal_rows(6, 30, seed=1)
    match = match_eigenvectors(big, big[[1, 0, 2, 3]])
    np.testing.assert_array_equal(match.matched, [1, 0, 2, 3, -1, -1])
    assert np.isnan(match.plain_displacements[4:]).all() and np.isnan(match.cluster_displacements[4:]).all()
    assert match.rank_overlaps.shape == (4,) and match.plain_overlaps.shape == (6,)


def test_assignment_maximizes_total_squared_overlap_not_greedy():
    e = torch.eye(4, dtype=torch.float64)
    a = torch.stack([e[0], 0.6 * e[0] + 0.8 * e[2]])
    b = torch.stack([0.8 * e[0] + 0.6 * e[2], 0.7 * e[0] + 0.1 * e[1] + math.sqrt(0.5) * e[3]])
    # squared overlaps [[.64, .49], [.9216, .1764]]: greedy on row 0 takes column 0 (total .8164),
    # the optimum swaps (total 1.4116)
    match = match_eigenvectors(a, b)
    np.testing.assert_array_equal(match.matched, [1, 0])
    np.testing.assert_allclose(match.plain_overlaps, [0.7, 0.96], atol=1e-14)


def test_degenerate_clusters_join_relative_neighbour_gaps_within_the_spread():
    values = [10.0, 9.995, 9.99, 5.0, 1e-9, 0.0]  # spread of ranks 0-2: 0.01 = 1e-3 · 10, just inside
    assert degenerate_clusters(values, rtol=1e-3) == ((0, 1, 2), (3,), (4,), (5,))
    assert degenerate_clusters(values, rtol=1e-3, atol=1e-6) == ((0, 1, 2), (3,), (4, 5))
    assert degenerate_clusters(values, rtol=0.0) == tuple((i,) for i in range(6))


def test_a_chain_wider_than_the_tolerance_is_split_at_its_largest_gap():
    # neighbour gaps .004, .006, .003, .002 are all below 1e-3 · 10, the spread .015 is not
    values = [10.0, 9.996, 9.990, 9.987, 9.985]
    assert degenerate_clusters(values, rtol=1e-3) == ((0, 1), (2, 3, 4))


def test_a_ladder_of_small_uniform_gaps_is_not_one_cluster():
    # ranks 11-20 of an MLP's top-20: every gap below rtol, ends 1.5 % apart; chaining made this one cluster
    rtol = 1e-3
    values = 1.0 - 0.0008 * np.arange(20)
    clusters = degenerate_clusters(values, rtol=rtol)
    assert [rank for cluster in clusters for rank in cluster] == list(range(20))
    for cluster in clusters:
        members = values[list(cluster)]
        assert members.max() - members.min() <= rtol * np.abs(members).max()
    assert max(len(cluster) for cluster in clusters) == 2


def _ladder_of_pairs(n_pairs: int) -> np.ndarray:
    """Eigenvalues 1, 1 − 2e-4, 1 − 1.1e-3, …: gaps of 2e-4 inside pairs and 9e-4 between them, all below
    rtol = 1e-3 of the neighbour, so chaining joins the whole ladder; the spread bound cuts it into pairs."""
    gaps = np.tile([2e-4, 9e-4], n_pairs)[: 2 * n_pairs - 1]
    return 1.0 - np.concatenate([[0.0], np.cumsum(gaps)])


def test_motion_across_a_chained_ladder_is_measured(orthonormal_rows, rotate_pair):
    values = np.concatenate([[5.0, 3.0], _ladder_of_pairs(4)])  # ranks 2..9: pairs (2,3), (4,5), …
    block = orthonormal_rows(10, 60, seed=3)
    later = rotate_pair(rotate_pair(block, 3, 4, 0.5), 7, 8, 0.3)  # each rotation crosses a pair boundary
    match = match_eigenvectors(block, later, values, values, cluster_rtol=1e-3)
    assert match.clusters_a == ((0,), (1,), (2, 3), (4, 5), (6, 7), (8, 9))
    expected = np.zeros(10)
    expected[[3, 4]] = 2 * (1 - math.cos(0.5))
    expected[[7, 8]] = 2 * (1 - math.cos(0.3))
    np.testing.assert_allclose(match.plain_displacements, expected, atol=1e-13)
    # the rotations leave every pair's span: cluster-aware equals plain (chained, it was 0 for all)
    np.testing.assert_allclose(match.cluster_displacements, expected, atol=1e-13)


def test_clusters_are_not_merged_through_the_assignment(orthonormal_rows, rotate_pair):
    # t: ranks 0, 1 degenerate; t': ranks 1, 2 degenerate; the assignment is the identity. Linking the two
    # clusters through it made one group {0, 1, 2} whose span holds every vector: no motion anywhere.
    block = orthonormal_rows(5, 40, seed=4)
    later = rotate_pair(block, 0, 2, 0.4)  # rank 0 tilts toward rank 2, out of its cluster at t
    values_a = np.array([5.0, 5.0 * (1 - 1e-5), 3.0, 2.0, 1.0])
    values_b = np.array([5.0, 3.0 * (1 + 1e-5), 3.0, 2.0, 1.0])
    match = match_eigenvectors(block, later, values_a, values_b)
    assert match.clusters_a == ((0, 1), (2,), (3,), (4,))
    assert match.clusters_b == ((0,), (1, 2), (3,), (4,))
    np.testing.assert_array_equal(match.matched, np.arange(5))
    # rank 0: B = {0} at t', A = {0, 1} at t: ||P_A w_0|| = cos 0.4. Rank 2: B = {1, 2}, ||P_B v_2|| = cos 0.4
    expected = 2 * (1 - math.cos(0.4))
    np.testing.assert_allclose(match.cluster_displacements, [expected, 0, expected, 0, 0], atol=1e-13)
    assert [(g.ranks_a, g.ranks_b) for g in match.cluster_groups] == [((0, 1), (0, 1)), ((1, 2), (1, 2))]


def test_a_truly_degenerate_pair_by_hand():
    # R³, λ = (3, 1, 1) at both times; at t' the degenerate pair is rotated by 30° inside its plane
    e = np.eye(3)
    c, s = math.cos(math.pi / 6), math.sin(math.pi / 6)
    later = np.stack([e[0], c * e[1] + s * e[2], -s * e[1] + c * e[2]])
    match = match_eigenvectors(e, later, [3.0, 1.0, 1.0], [3.0, 1.0, 1.0])
    # plain: |<v_1, w_1>| = cos 30° = √3/2, d = 2 − √3 ≈ 0.268; cluster-aware: v_1 lies in span(w_1, w_2)
    np.testing.assert_allclose(
        match.plain_displacements, [0.0, 2 - math.sqrt(3), 2 - math.sqrt(3)], atol=1e-15
    )
    np.testing.assert_allclose(match.cluster_displacements, 0.0, atol=1e-15)
    assert match.mean_plain_overlap == pytest.approx((1 + math.sqrt(3)) / 3, abs=1e-15)
    assert match.mean_cluster_overlap == pytest.approx(1.0, abs=1e-15)
    # degenerate at t only (the pair splits at t'): the match w_j lies in span(v_1, v_2), no motion
    split = match_eigenvectors(e, later, [3.0, 1.0, 1.0], [3.0, 1.5, 1.0])
    np.testing.assert_allclose(split.cluster_displacements, 0.0, atol=1e-15)
    np.testing.assert_allclose(split.plain_displacements, match.plain_displacements, atol=1e-15)
    # not degenerate at either time: both displacements are the plain one
    distinct = match_eigenvectors(e, later, [3.0, 2.0, 1.0], [3.0, 2.0, 1.0])
    np.testing.assert_array_equal(distinct.cluster_displacements, distinct.plain_displacements)


def test_each_overlap_is_consistent_with_the_displacement_beside_it(orthonormal_rows):
    generator = np.random.default_rng(5)
    block = orthonormal_rows(12, 80, seed=5).numpy()
    later, _ = np.linalg.qr((block + 0.3 * generator.standard_normal(block.shape)).T)
    values_a = np.array([9, 7, 7, 7, 5, 4, 4, 3, 2.5, 2, 1.5, 1.0]) * (1 + 1e-5 * generator.random(12))
    values_b = np.array([9, 8, 7, 6, 5, 5, 4, 3, 3.0, 2, 1.5, 1.0]) * (1 + 1e-5 * generator.random(12))
    match = match_eigenvectors(block, later.T[:11], values_a, values_b[:11])
    assert any(len(c) > 1 for c in match.clusters_a) and any(len(c) > 1 for c in match.clusters_b)
    assigned = match.matched >= 0
    for overlaps, displacements in (
        (match.plain_overlaps, match.plain_displacements),
        (match.cluster_overlaps, match.cluster_displacements),
        (match.rank_overlaps, match.rank_displacements),
    ):
        np.testing.assert_array_equal(displacements, 2.0 * (1.0 - overlaps))
    assert np.nanmean(match.plain_displacements) == pytest.approx(
        2 * (1 - match.mean_plain_overlap), abs=1e-14
    )
    assert np.nanmean(match.cluster_displacements) == pytest.approx(
        2 * (1 - match.mean_cluster_overlap), abs=1e-14
    )
    assert (match.plain_overlaps[assigned] <= match.cluster_overlaps[assigned]).all()
    assert (match.cluster_overlaps[assigned] <= 1.0).all() and np.isnan(
        match.cluster_overlaps[~assigned]
    ).all()
