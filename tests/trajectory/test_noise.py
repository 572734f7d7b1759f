"""Noise-versus-curvature metrics against hand-built matrices and independent dense computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch

from hessdyn.curvature import MatrixOperator
from hessdyn.trajectory import (
    commutation,
    compress_jointly,
    diagonal_power_law,
    diagonal_power_law_by_block,
    joint_basis,
    noise_fraction_in_subspace,
)

from .conftest import orthonormal_rows

P = 30


def with_eigenbasis(eigenvalues: torch.Tensor, basis_rows: torch.Tensor) -> torch.Tensor:
    """Σ_i λ_i q_i q_iᵀ for the rows q_i of `basis_rows`."""
    return (basis_rows.T * eigenvalues) @ basis_rows


def random_symmetric(seed: int, n: int = P) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    A = torch.randn(n, n, generator=gen, dtype=torch.float64)
    return A @ A.T


def test_commutation_of_hand_built_pairs():
    A = torch.diag(torch.tensor([1.0, 0.0], dtype=torch.float64))
    B = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    # AB − BA = [[0, 1], [−1, 0]]: norm √2; ||A|| = 1, ||B|| = √2
    result = commutation(A, B)
    assert result.value == pytest.approx(1.0, abs=1e-15)
    assert result.commutator_norm == pytest.approx(math.sqrt(2), abs=1e-15)
    assert commutation(7.0 * A, 0.01 * B).value == pytest.approx(1.0, abs=1e-15)
    assert commutation(A, A).value == 0.0
    assert math.isnan(commutation(A, torch.zeros(2, 2, dtype=torch.float64)).value)


def test_matrices_with_a_common_eigenbasis_commute_in_their_joint_top_subspace():
    Q = orthonormal_rows(P, P, seed=1)
    C = with_eigenbasis(torch.linspace(5, 0.1, P, dtype=torch.float64), Q)
    H = with_eigenbasis(torch.linspace(-1, 9, P, dtype=torch.float64), Q)
    comp = compress_jointly(MatrixOperator(C), MatrixOperator(H), Q[:4], Q[-3:])
    assert comp.dim == 7 and comp.num_products == 7
    assert commutation(comp.noise, comp.curvature).value < 1e-14
    assert commutation(C, H).value < 1e-14


def test_restricted_commutation_equals_a_dense_computation():
    C, H = random_symmetric(2), random_symmetric(3)
    V_C, V_H = orthonormal_rows(3, P, seed=4), orthonormal_rows(4, P, seed=5)
    comp = compress_jointly(MatrixOperator(C), MatrixOperator(H), V_C, V_H)
    Q, _ = torch.linalg.qr(torch.cat([V_H, V_C]).T)  # the same span by another route
    A, B = Q.T @ C @ Q, Q.T @ H @ Q
    expected = torch.linalg.matrix_norm(A @ B - B @ A) / (
        torch.linalg.matrix_norm(A) * torch.linalg.matrix_norm(B)
    )
    assert commutation(comp.noise, comp.curvature).value == pytest.approx(float(expected), rel=1e-12)
    torch.testing.assert_close(
        comp.basis.T @ comp.basis, torch.eye(7, dtype=torch.float64), rtol=0, atol=1e-14
    )


def test_a_subspace_spanning_everything_gives_the_full_commutation():
    C, H = random_symmetric(6, n=8), random_symmetric(7, n=8)
    basis = orthonormal_rows(8, 8, seed=8)
    comp = compress_jointly(C, H, basis[:5], basis[3:])  # dense tensors work as operators too
    assert comp.dim == 8
    assert commutation(comp.noise, comp.curvature).value == pytest.approx(commutation(C, H).value, rel=1e-12)


def test_a_direction_in_both_blocks_is_counted_once():
    rows = orthonormal_rows(5, P, seed=9)
    Q = joint_basis(rows[:3], -rows[1:5])
    assert Q.shape == (P, 5)
    with pytest.raises(ValueError, match="different spaces"):
        joint_basis(rows, orthonormal_rows(2, P + 1, seed=0))


def test_noise_fraction_along_the_noise_eigenvectors_is_their_eigenvalue_share():
    Q = orthonormal_rows(P, P, seed=10)
    lam = torch.linspace(3.0, 0.0, P, dtype=torch.float64).pow(2)
    C = with_eigenbasis(lam, Q)
    H = random_symmetric(11)
    comp = compress_jointly(MatrixOperator(C), MatrixOperator(H), Q[:2], Q[:4])
    result = noise_fraction_in_subspace(comp, Q[:4], float(lam.sum()), noise_trace_se=0.1)
    assert result.fraction == pytest.approx(float(lam[:4].sum() / lam.sum()), rel=1e-12)
    np.testing.assert_allclose(result.directional, lam[:4].numpy(), rtol=1e-12)
    assert result.random_fraction == pytest.approx(4 / P)
    assert result.fraction_se == pytest.approx(result.fraction * 0.1 / float(lam.sum()), rel=1e-12)


def test_noise_fraction_equals_the_dense_projection_for_non_orthonormal_rows():
    C, H = random_symmetric(12), random_symmetric(13)
    V_H = orthonormal_rows(4, P, seed=14)
    skewed = V_H + 0.3 * V_H.roll(1, dims=0)  # same span, rows neither orthogonal nor unit
    comp = compress_jointly(MatrixOperator(C), MatrixOperator(H), orthonormal_rows(2, P, seed=15), skewed)
    result = noise_fraction_in_subspace(comp, skewed, float(torch.trace(C)))
    assert result.fraction == pytest.approx(float(torch.trace(V_H @ C @ V_H.T) / torch.trace(C)), rel=1e-12)
    unit = skewed / skewed.norm(dim=1, keepdim=True)
    np.testing.assert_allclose(
        result.directional, torch.einsum("kp,pq,kq->k", unit, C, unit).numpy(), rtol=1e-12
    )


def test_noise_fraction_refuses_vectors_outside_the_compression():
    C = random_symmetric(16)
    comp = compress_jointly(C, C, orthonormal_rows(2, P, seed=17), orthonormal_rows(2, P, seed=18))
    with pytest.raises(ValueError, match="leave the compression"):
        noise_fraction_in_subspace(comp, orthonormal_rows(2, P, seed=19), 1.0)


def test_exact_power_law_is_recovered():
    gen = torch.Generator().manual_seed(20)
    h = torch.rand(500, generator=gen, dtype=torch.float64) * 10 + 1e-3
    fit = diagonal_power_law(h, 0.3 * h.pow(1.7))
    assert fit.gamma == pytest.approx(1.7, abs=1e-12)
    assert fit.prefactor == pytest.approx(0.3, rel=1e-10)
    assert fit.r_squared == pytest.approx(1.0, abs=1e-12)
    assert fit.gamma_se < 1e-12 and fit.num_used == 500


def test_fit_matches_scipy_linregress_and_its_interval():
    rng = np.random.default_rng(21)
    h = rng.lognormal(size=300)
    c = 2.0 * h**1.4 * rng.lognormal(sigma=0.5, size=300)
    fit = diagonal_power_law(torch.from_numpy(h), torch.from_numpy(c), confidence=0.9)
    ref = scipy.stats.linregress(np.log(h), np.log(c))
    assert fit.gamma == pytest.approx(ref.slope, rel=1e-12)
    assert fit.gamma_se == pytest.approx(ref.stderr, rel=1e-10)
    assert fit.r_squared == pytest.approx(ref.rvalue**2, rel=1e-10)
    half = scipy.stats.t.ppf(0.95, 298) * ref.stderr
    assert (fit.ci_low, fit.ci_high) == pytest.approx((ref.slope - half, ref.slope + half), rel=1e-10)


def test_interval_covers_the_true_exponent_at_its_nominal_rate():
    rng = np.random.default_rng(22)
    covered = 0
    for _ in range(400):
        h = rng.lognormal(size=40)
        c = h**1.5 * rng.lognormal(sigma=0.3, size=40)
        fit = diagonal_power_law(torch.from_numpy(h), torch.from_numpy(c))
        covered += fit.ci_low <= 1.5 <= fit.ci_high
    assert 0.92 <= covered / 400 <= 0.98


def test_nonpositive_and_insignificant_entries_are_left_out_and_counted():
    h = torch.tensor([1.0, 2.0, 4.0, 8.0, -1.0, 0.0, 3.0, 5.0], dtype=torch.float64)
    c = h.clamp_min(0).pow(2)
    c[2] = 0.0  # a dead coordinate: no noise
    h_se = torch.full_like(h, 0.1)
    h_se[7] = 3.0  # 5 ± 3 is not 2 SE above zero
    fit = diagonal_power_law(h, c, curvature_se=h_se)
    assert (fit.nonpositive_curvature, fit.nonpositive_noise, fit.insignificant) == (2, 1, 1)
    assert fit.num_used == 4 and fit.num_total == 8
    assert fit.gamma == pytest.approx(2.0, abs=1e-12)


def test_too_few_entries_give_nan():
    fit = diagonal_power_law(torch.tensor([1.0, 2.0, -3.0]), torch.tensor([1.0, 4.0, 9.0]))
    assert math.isnan(fit.gamma) and math.isnan(fit.ci_low) and fit.num_used == 2
    flat = diagonal_power_law(torch.ones(5), torch.arange(1.0, 6.0))
    assert math.isnan(flat.gamma)


def test_per_block_fits_follow_the_layout():
    gen = torch.Generator().manual_seed(23)
    h = torch.rand(50, generator=gen, dtype=torch.float64) + 0.1
    c = torch.cat([h[:20].pow(1.2), 3 * h[20:].pow(1.9)])
    fits = diagonal_power_law_by_block(h, c, [("w", 20), ("b", 30)])
    assert [f.name for f in fits] == ["w", "b"]
    assert fits[0].fit.gamma == pytest.approx(1.2, abs=1e-12)
    assert fits[1].fit.gamma == pytest.approx(1.9, abs=1e-12)
    with pytest.raises(ValueError, match="P=50"):
        diagonal_power_law_by_block(h, c, [("w", 20)])
