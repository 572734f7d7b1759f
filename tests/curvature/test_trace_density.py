"""Hutchinson, Hutch++ and stochastic Lanczos quadrature against the exact spectrum."""

import pytest
import torch

from hessdyn.curvature import MatrixOperator, curvature_operator, dense_matrix
from hessdyn.solvers import hutch_plus_plus, hutchinson, lanczos_tridiagonal, spectral_density
from hessdyn.solvers.probes import rademacher

from .cases import MLPS, data, spectrum_matrix


@pytest.fixture(scope="module")
def hessian():
    model = MLPS[0].build()
    x, y = data()
    op = curvature_operator(model, x, y)
    return op, dense_matrix(op)


@pytest.mark.parametrize("estimator", ["hutchinson", "hutch++"])
def test_trace_and_trace_of_square_within_three_standard_errors(hessian, estimator):
    op, H = hessian
    exact, exact_sq = float(torch.trace(H)), float((H * H).sum())
    for seed in range(3):
        est = (
            hutchinson(op, 60, seed=seed) if estimator == "hutchinson" else hutch_plus_plus(op, 60, seed=seed)
        )
        assert abs(est.trace - exact) <= 3 * est.trace_se
        assert abs(est.trace_sq - exact_sq) <= 3 * est.trace_sq_se
        assert est.num_hvps == 60


def test_hutchinson_standard_error_matches_theory(hessian):
    op, H = hessian
    est = hutchinson(op, 400, seed=0)
    # Var(zᵀHz) = 2(||H||_F² − Σ H_ii²) for Rademacher z
    theory = (2 * (float((H * H).sum()) - float(H.diagonal().pow(2).sum())) / 400) ** 0.5
    assert 0.8 * theory < est.trace_se < 1.25 * theory


def test_hutch_plus_plus_beats_hutchinson_on_a_decaying_spectrum():
    A, _ = spectrum_matrix(1.0 / torch.arange(1, 301, dtype=torch.float64) ** 2)
    op = MatrixOperator(A)
    plain, plus = hutchinson(op, 90, seed=0), hutch_plus_plus(op, 90, seed=0)
    assert plus.trace_se < 0.2 * plain.trace_se
    assert abs(plus.trace - float(torch.trace(A))) <= 3 * plus.trace_se


def test_slq_weights_density_and_moments(hessian):
    op, H = hessian
    w = torch.linalg.eigvalsh(H)
    n = op.size
    res = spectral_density(op, num_probes=6, num_steps=30, seed=0)
    torch.testing.assert_close(res.weights.sum(1), torch.ones(6, dtype=torch.float64), rtol=0, atol=1e-12)
    assert abs(float(torch.trapezoid(res.density, res.grid)) - 1) < 1e-3
    assert res.num_hvps == 6 * 30
    # Gauss quadrature is exact for low moments: each probe's Σ w θ^p is zᵀH^p z / P for its own probe z
    gen = torch.Generator().manual_seed(0)
    Z = rademacher(n, 6, gen, "cpu")
    torch.testing.assert_close(
        (res.weights * res.nodes).sum(1), (Z * (H @ Z)).sum(0) / n, rtol=0, atol=1e-12 * float(w.abs().max())
    )
    # and the moments estimate the spectrum's: mean within 3 standard errors of tr(H)/P and tr(H²)/P
    for p, exact in ((1, float(w.mean())), (2, float(w.pow(2).mean()))):
        per_probe = (res.weights * res.nodes.pow(p)).sum(1)
        se = float(per_probe.std()) / 6**0.5
        assert abs(res.moment(p) - exact) <= 3 * se
    # the extreme nodes are the extreme eigenvalues (30 steps on P = 99 resolve the ends)
    assert abs(float(res.nodes.max()) - float(w.max())) < 1e-8 * float(w.abs().max())
    assert abs(float(res.nodes.min()) - float(w.min())) < 1e-8 * float(w.abs().max())


def test_slq_probes_in_lockstep_match_one_at_a_time(hessian):
    op, _ = hessian
    one = spectral_density(op, num_probes=4, num_steps=12, seed=1, block_size=1)
    block = spectral_density(op, num_probes=4, num_steps=12, seed=1, block_size=4)
    torch.testing.assert_close(block.nodes, one.nodes, rtol=0, atol=1e-10)
    torch.testing.assert_close(block.weights, one.weights, rtol=0, atol=1e-10)


def test_lanczos_tridiagonal_stops_at_an_invariant_subspace():
    A = torch.diag(torch.tensor([3.0, 2.0, 1.0, 1.0, 1.0], dtype=torch.float64))
    tri = lanczos_tridiagonal(MatrixOperator(A), torch.ones(5, 1, dtype=torch.float64), 5)
    assert int(tri.steps[0]) == 3  # three distinct eigenvalues
    res = spectral_density(MatrixOperator(A), num_probes=3, num_steps=5, sigma=0.01)
    assert bool((res.weights[:, 3:] == 0).all())
    torch.testing.assert_close(res.weights.sum(1), torch.ones(3, dtype=torch.float64), rtol=0, atol=1e-12)
