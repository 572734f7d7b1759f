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
    np.testing.assert_allclose(match.displacements, 0.0, atol=1e-14)
    np.testing.assert_allclose(match.rank_displacements, 0.0, atol=1e-14)
    assert match.crossings == ()
    assert match.cluster_groups == ()
    assert match.mean_matched_overlap == pytest.approx(1.0, abs=1e-14)


def test_sign_flips_give_zero_displacement(block):
    signs = torch.tensor([-1.0, 1.0, -1.0, -1.0, 1.0], dtype=torch.float64)
    match = match_eigenvectors(block, signs[:, None] * block)
    np.testing.assert_allclose(match.displacements, 0.0, atol=1e-14)
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
        np.testing.assert_allclose(match.overlaps[:2], expected, atol=1e-13)
        np.testing.assert_allclose(match.displacements[:2], 2 * (1 - expected), atol=1e-13)
    np.testing.assert_allclose(match.rank_overlaps[:2], expected, atol=1e-13)
    np.testing.assert_allclose(match.rank_displacements[:2], 2 * (1 - expected), atol=1e-13)
    np.testing.assert_allclose(match.rank_displacements[2:], 0.0, atol=1e-13)


def test_permuted_ranks_are_matched_and_recorded_as_crossings(block):
    permutation = [2, 0, 1, 3, 4]  # rank r at t' holds vector permutation[r] of t
    later = block[permutation] * torch.tensor([1.0, -1.0, 1.0, 1.0, 1.0], dtype=torch.float64)[:, None]
    match = match_eigenvectors(block, later, EIGENVALUES, EIGENVALUES)
    inverse = np.argsort(permutation)
    np.testing.assert_array_equal(match.matched, inverse)
    np.testing.assert_allclose(match.displacements, 0.0, atol=1e-13)
    # rank-by-rank compares different vectors: orthogonal for the three permuted ranks
    np.testing.assert_allclose(match.rank_displacements, [2, 2, 2, 0, 0], atol=1e-13)
    crossings = {(c.rank_a, c.rank_b) for c in match.crossings}
    assert crossings == {(0, 1), (1, 2), (2, 0)}
    events = match.events(step_a=10, step_b=20)
    assert list(events.columns) == ["step_a", "step_b", "kind", "ranks", "detail"]
    assert sorted(events["ranks"]) == ["0->1", "1->2", "2->0"]
    assert set(events["kind"]) == {"crossing"}


def test_weak_rank_changes_are_not_crossings(block, rotate_pair):
    # rotated by 80°, each vector is closest to the other rank, with |overlap| = cos 10° ≈ 0.985
    later = rotate_pair(block, 0, 1, math.radians(80))
    match = match_eigenvectors(block, later, crossing_min_overlap=0.99)
    np.testing.assert_array_equal(match.matched[:2], [1, 0])
    assert match.overlaps[0] == pytest.approx(math.cos(math.radians(10)), abs=1e-13)
    assert match.crossings == ()
    assert len(match_eigenvectors(block, later).crossings) == 2


def test_rotation_inside_a_degenerate_cluster_is_not_motion(block, rotate_pair):
    values = np.array([10.0, 6.0, 6.0 * (1 + 1e-5), 3.0, 1.0])  # ranks 1, 2 degenerate
    later = rotate_pair(block, 1, 2, 0.7)
    match = match_eigenvectors(block, later, values, values, cluster_rtol=1e-3)
    assert match.clusters_a == ((0,), (1, 2), (3,), (4,))
    np.testing.assert_allclose(match.displacements, 0.0, atol=1e-13)
    np.testing.assert_allclose(match.rank_displacements[1:3], 2 * (1 - math.cos(0.7)), atol=1e-13)
    (group,) = match.cluster_groups
    assert (group.ranks_a, group.ranks_b) == ((1, 2), (1, 2))
    assert group.subspace_overlap == pytest.approx(1.0, abs=1e-13)
    assert match.crossings == ()
    # without eigenvalues the same rotation is motion
    plain = match_eigenvectors(block, later)
    np.testing.assert_allclose(plain.displacements[1:3], 2 * (1 - math.cos(0.7)), atol=1e-13)


def test_cluster_that_tilts_out_of_its_span_is_compared_by_projection(block, rotate_pair):
    values = np.array([10.0, 6.0, 6.0, 3.0, 1.0])
    # rotate rank 1 by 0.3 towards rank 3 (outside the cluster), then mix ranks 1 and 2
    later = rotate_pair(rotate_pair(block, 1, 3, 0.3), 1, 2, 0.5)
    match = match_eigenvectors(block, later, values, values)
    # the cluster span at t' is span(cos .3 v1 + sin .3 v3, v2): ||P v1|| = cos .3, ||P v2|| = 1
    np.testing.assert_allclose(match.projected_overlaps[1:3], [math.cos(0.3), 1.0], atol=1e-13)
    np.testing.assert_allclose(match.displacements[1:3], [2 * (1 - math.cos(0.3)), 0.0], atol=1e-13)
    (group,) = match.cluster_groups
    assert group.subspace_overlap == pytest.approx((math.cos(0.3) ** 2 + 1) / 2, abs=1e-13)


def test_different_k_leaves_extra_ranks_unmatched(orthonormal_rows):
    big = orthonormal_rows(6, 30, seed=1)
    match = match_eigenvectors(big, big[[1, 0, 2, 3]])
    np.testing.assert_array_equal(match.matched, [1, 0, 2, 3, -1, -1])
    assert np.isnan(match.displacements[4:]).all()
    assert match.rank_overlaps.shape == (4,)
    table = match.table()
    assert table.shape[0] == 6 and np.isnan(table["rank_overlap"].iloc[5])


def test_assignment_maximizes_total_squared_overlap_not_greedy():
    e = torch.eye(4, dtype=torch.float64)
    a = torch.stack([e[0], 0.6 * e[0] + 0.8 * e[2]])
    b = torch.stack([0.8 * e[0] + 0.6 * e[2], 0.7 * e[0] + 0.1 * e[1] + math.sqrt(0.5) * e[3]])
    # squared overlaps [[.64, .49], [.9216, .1764]]: greedy on row 0 takes column 0 (total .8164),
    # the optimum swaps (total 1.4116)
    match = match_eigenvectors(a, b)
    np.testing.assert_array_equal(match.matched, [1, 0])
    np.testing.assert_allclose(match.overlaps, [0.7, 0.96], atol=1e-14)


def test_degenerate_clusters_chain_relative_gaps():
    values = [10.0, 9.995, 9.99, 5.0, 1e-9, 0.0]
    assert degenerate_clusters(values, rtol=1e-3) == ((0, 1, 2), (3,), (4,), (5,))
    assert degenerate_clusters(values, rtol=1e-3, atol=1e-6) == ((0, 1, 2), (3,), (4, 5))
    assert degenerate_clusters(values, rtol=0.0) == tuple((i,) for i in range(6))
