"""Fraction of a gradient or update inside the top-k eigenspace."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hessdyn.trajectory import top_space_alignment, update_alignment


def test_alignment_of_a_vector_with_known_components(block, orthonormal_rows):
    basis = orthonormal_rows(7, 40, seed=2)
    top, rest = basis[:3], basis[3:]
    g = 3.0 * top[0] - 1.0 * top[2] + 2.0 * rest[1]
    result = top_space_alignment(top, g)
    assert result.fraction == pytest.approx(10 / 14, rel=1e-13)
    np.testing.assert_allclose(result.shares, [9 / 14, 0.0, 1 / 14], atol=1e-14)
    assert result.norm == pytest.approx(math.sqrt(14), rel=1e-14)


def test_alignment_is_the_projection_even_for_a_non_orthonormal_basis(orthonormal_rows):
    basis = orthonormal_rows(3, 20, seed=5)
    skewed = torch.stack([basis[0], basis[0] + basis[1]])  # same span as basis[:2], rows not orthogonal
    g = basis[0] + basis[1] + basis[2]
    assert top_space_alignment(skewed, g).fraction == pytest.approx(2 / 3, rel=1e-13)


def test_update_alignment_uses_the_parameter_difference(orthonormal_rows):
    basis = orthonormal_rows(4, 30, seed=6)
    before = torch.randn(30, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    after = before + 0.5 * basis[1] + 0.5 * basis[3]
    result = update_alignment(basis[:2], before.numpy(), after)
    assert result.fraction == pytest.approx(0.5, rel=1e-12)
    np.testing.assert_allclose(result.shares, [0.0, 0.5], atol=1e-12)


def test_zero_vector_gives_nan():
    result = top_space_alignment(torch.eye(4)[:2], torch.zeros(4))
    assert math.isnan(result.fraction) and result.norm == 0.0
