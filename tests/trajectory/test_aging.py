"""Two-time correlations over a list of checkpoints."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hessdyn.trajectory import compare_subspaces, match_eigenvectors, two_time_correlation


@pytest.fixture
def trajectory(block, rotate_pair):
    """Four checkpoints; the plane of ranks 0, 1 rotates by 0.2 rad per checkpoint and rank 2 tilts out of
    the top-k towards rank 4."""
    checkpoints = []
    for index, step in enumerate([0, 10, 30, 70]):
        tilted = rotate_pair(block, 2, 4, 0.1 * index)[:4]
        checkpoints.append((step, rotate_pair(tilted, 0, 1, 0.2 * index)))
    return checkpoints


def test_subspace_overlap_matrix_matches_pairwise_comparisons(trajectory):
    result = two_time_correlation(list(reversed(trajectory)), "subspace_overlap")  # order is restored
    np.testing.assert_array_equal(result.steps, [0, 10, 30, 70])
    for i, (_, block_i) in enumerate(trajectory):
        for j, (_, block_j) in enumerate(trajectory):
            if j < i:
                assert math.isnan(result.matrix[i, j])
            else:
                expected = compare_subspaces(block_i, block_j).overlap
                assert result.matrix[i, j] == pytest.approx(expected, abs=1e-12)
    # only the tilt of rank 2 leaves the span: overlap = (3 + cos²(0.1 Δ)) / 4
    assert result.matrix[0, 3] == pytest.approx((3 + math.cos(0.3) ** 2) / 4, abs=1e-12)


def test_mean_matched_overlap_and_tidy_table(trajectory):
    result = two_time_correlation(trajectory, "mean_matched_overlap_plain")
    expected = match_eigenvectors(trajectory[1][1], trajectory[3][1]).mean_plain_overlap
    assert result.matrix[1, 3] == pytest.approx(expected, abs=1e-13)
    assert result.matrix[0, 1] == pytest.approx((2 * math.cos(0.2) + math.cos(0.1) + 1) / 4, abs=1e-13)
    table = result.table()
    assert list(table.columns) == ["t_w", "t", "tau", "value"]
    assert len(table) == 10  # 4 diagonal + 6 pairs
    row = table[(table.t_w == 10) & (table.t == 70)].iloc[0]
    assert row.tau == 60 and row.value == pytest.approx(expected, abs=1e-13)


def test_series_are_slices_of_the_matrix(trajectory):
    result = two_time_correlation(trajectory)
    consecutive = result.series("consecutive")
    assert consecutive[["step_a", "step_b"]].values.tolist() == [[0, 10], [10, 30], [30, 70]]
    np.testing.assert_allclose(consecutive.value, [result.matrix[i, i + 1] for i in range(3)])
    np.testing.assert_allclose(result.series("first").value, result.matrix[0])
    np.testing.assert_allclose(result.series("last").value, result.matrix[:, 3])
    assert result.series("first").value.iloc[0] == pytest.approx(1.0, abs=1e-13)
    with pytest.raises(ValueError, match="unknown series"):
        result.series("middle")


def test_clusters_are_used_when_eigenvalues_are_given(block, rotate_pair):
    values = [np.array([5.0, 5.0, 1.0])] * 2
    checkpoints = [(0, block[:3]), (1, rotate_pair(block, 0, 1, 0.6)[:3])]
    no_values = two_time_correlation(checkpoints, "mean_matched_overlap_cluster")
    clustered = two_time_correlation(checkpoints, "mean_matched_overlap_cluster", eigenvalues=values)
    plain = two_time_correlation(checkpoints, "mean_matched_overlap_plain", eigenvalues=values)
    assert no_values.matrix[0, 1] == pytest.approx((2 * math.cos(0.6) + 1) / 3, abs=1e-13)
    assert clustered.matrix[0, 1] == pytest.approx(1.0, abs=1e-13)
    # the plain overlap ignores the degeneracy even when eigenvalues are given
    assert plain.matrix[0, 1] == pytest.approx((2 * math.cos(0.6) + 1) / 3, abs=1e-13)
    with pytest.raises(ValueError, match="unknown metric"):
        two_time_correlation(checkpoints, "mean_matched_overlap")


def test_duplicate_steps_are_refused(block):
    with pytest.raises(ValueError, match="duplicate"):
        two_time_correlation([(5, block), (5, block)])
