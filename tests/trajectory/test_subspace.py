"""Subspace overlap, principal angles and Grassmann distance against known geometry and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from hessdyn.trajectory import compare_subspaces, grassmann_distance, principal_angles, subspace_overlap


def test_identical_and_sign_flipped_spaces_overlap_fully(block):
    assert subspace_overlap(block, block) == pytest.approx(1.0, abs=1e-14)
    assert subspace_overlap(block, -block) == pytest.approx(1.0, abs=1e-14)
    assert grassmann_distance(block, block) == pytest.approx(0.0, abs=1e-7)


def test_known_principal_angles(orthonormal_rows):
    # v_i(t') = cos θ_i v_i + sin θ_i w_i with w_i orthogonal to everything: principal angles are θ_i
    basis = orthonormal_rows(6, 30, seed=3)
    v, w = basis[:3], basis[3:]
    angles = torch.tensor([0.05, 0.4, 1.2], dtype=torch.float64)
    later = torch.cos(angles)[:, None] * v + torch.sin(angles)[:, None] * w
    comparison = compare_subspaces(v, later)
    np.testing.assert_allclose(comparison.principal_angles, angles.numpy(), atol=1e-12)
    assert comparison.overlap == pytest.approx(float(torch.mean(torch.cos(angles) ** 2)), abs=1e-13)
    assert comparison.grassmann_distance == pytest.approx(float(torch.linalg.vector_norm(angles)), abs=1e-12)
    # the overlap is also (1/k)||V_a V_bᵀ||_F² for orthonormal rows
    assert comparison.overlap == pytest.approx(float((v @ later.T).pow(2).sum() / 3), abs=1e-13)


def test_rotation_within_the_space_does_not_move_it(block):
    mix, _ = torch.linalg.qr(
        torch.randn(5, 5, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    )
    comparison = compare_subspaces(block, mix @ block)
    assert comparison.overlap == pytest.approx(1.0, abs=1e-13)
    np.testing.assert_allclose(comparison.principal_angles, 0.0, atol=1e-7)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize(("k_a", "k_b"), [(4, 4), (3, 5), (6, 2)])
def test_angles_match_scipy_subspace_angles(orthonormal_rows, seed, k_a, k_b):
    a = orthonormal_rows(k_a, 25, seed=seed)
    # correlated spaces so that small and large angles both appear
    b = (
        orthonormal_rows(k_b, 25, seed=100 + seed)
        + 2.0 * a[:1].expand(k_b, -1) * torch.linspace(0, 1, k_b)[:, None]
    )
    expected = np.sort(scipy.linalg.subspace_angles(a.numpy().T, b.numpy().T))
    comparison = compare_subspaces(a, b)
    np.testing.assert_allclose(comparison.principal_angles, expected, atol=1e-12)
    assert comparison.grassmann_distance == pytest.approx(math.sqrt(np.sum(expected**2)), abs=1e-12)
    np.testing.assert_allclose(principal_angles(b, a), expected, atol=1e-12)


def test_random_spaces_overlap_near_k_over_p(orthonormal_rows):
    k, size = 4, 400
    values = [
        subspace_overlap(orthonormal_rows(k, size, seed=s), orthonormal_rows(k, size, seed=1000 + s))
        for s in range(40)
    ]
    # E = k/P = 0.01 exactly for Haar-random spaces; the spread over 40 draws is ~1e-3
    assert np.mean(values) == pytest.approx(k / size, rel=0.15)
    assert compare_subspaces(
        orthonormal_rows(k, size, seed=0), orthonormal_rows(k, size, seed=1)
    ).random_overlap == (k / size)


def test_float32_and_numpy_inputs_are_accepted(block):
    assert subspace_overlap(block.float(), block.numpy()) == pytest.approx(1.0, abs=1e-6)
