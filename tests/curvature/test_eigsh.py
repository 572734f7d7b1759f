"""Eigensolvers against numpy/torch eigh on real (tiny-net) Hessians and on designed spectra."""

import numpy as np
import pytest
import torch

from hessdyn.curvature import MatrixOperator, curvature_operator, dense_matrix
from hessdyn.solvers import eigsh_topk, full_spectrum
from hessdyn.solvers.selection import pair_thresholds

from .cases import MLPS, data, spectrum_matrix

METHODS = ["lanczos", "block", "dense"]


@pytest.fixture(scope="module")
def hessian_and_spectrum():
    model = MLPS[2].build()  # softplus: smooth, indefinite
    x, y = data()
    H = dense_matrix(curvature_operator(model, x, y))
    w, U = np.linalg.eigh(H.numpy())
    return model, x, y, torch.from_numpy(w), torch.from_numpy(U)


def subspace_overlap(X: torch.Tensor, U: torch.Tensor) -> float:
    """||Uᵀ Xᵀ||_F² / k for k unit rows X and k orthonormal columns U: 1 iff the spans agree."""
    return float((U.T @ X.T).pow(2).sum()) / X.shape[0]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("which", ["largest", "smallest"])
def test_extreme_pairs_match_eigh(hessian_and_spectrum, method, which):
    model, x, y, w, U = hessian_and_spectrum
    op = curvature_operator(model, x, y)
    k = 5
    res = eigsh_topk(op, k, which=which, tol=1e-10, method=method)
    idx = torch.arange(len(w) - 1, len(w) - 1 - k, -1) if which == "largest" else torch.arange(k)
    assert res.all_converged
    torch.testing.assert_close(res.eigenvalues, w[idx], rtol=1e-8, atol=1e-8 * float(w.abs().max()))
    overlaps = (res.eigenvectors @ U[:, idx]).diagonal().abs()
    assert float(overlaps.min()) > 1 - 1e-6
    assert res.num_hvps == op.num_hvps
    assert res.eigenvectors.shape == (k, op.size)


@pytest.mark.parametrize("method", METHODS)
def test_both_ends_with_different_counts(hessian_and_spectrum, method):
    model, x, y, w, _ = hessian_and_spectrum
    op = curvature_operator(model, x, y)
    res = eigsh_topk(op, 4, which="both", k_smallest=2, tol=1e-10, method=method)
    expected = torch.cat([w.flip(0)[:4], w[:2]])
    torch.testing.assert_close(res.eigenvalues, expected, rtol=1e-8, atol=1e-8 * float(w.abs().max()))
    assert res.part("largest").eigenvalues.shape == (4,) and res.part("smallest").eigenvalues.shape == (2,)
    torch.testing.assert_close(res.part("smallest").eigenvalues, w[:2], rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("which", ["largest", "smallest", "both"])
def test_thick_restarts_keep_the_answer(which):
    gen = torch.Generator().manual_seed(5)
    spectrum = torch.cat(
        [torch.tensor([9.0, 8.5, 8.0, 7.0, -6.0, -5.5]), torch.rand(294, generator=gen) * 4 - 2]
    )
    A, _ = spectrum_matrix(spectrum.double())
    w = torch.linalg.eigvalsh(A)
    # a 10-vector basis converges slowly (845 products for the smallest three to tol·|λ|)
    small = eigsh_topk(MatrixOperator(A), 3, which=which, tol=1e-10, max_basis=10, max_hvps=2000)
    large = eigsh_topk(MatrixOperator(A), 3, which=which, tol=1e-10)
    assert small.all_converged and small.num_hvps > 10  # it had to restart
    expected = {"largest": w.flip(0)[:3], "smallest": w[:3], "both": torch.cat([w.flip(0)[:3], w[:3]])}[which]
    for res in (small, large):
        torch.testing.assert_close(res.eigenvalues, expected, rtol=1e-10, atol=0)


def test_restart_keeping_the_small_end_does_not_shrink_the_tolerance_scale():
    """Regression: after a restart kept only small Ritz values, tol was applied relative to them, not λ1."""
    gen = torch.Generator().manual_seed(6)
    spectrum = torch.cat([torch.tensor([100.0, 50.0]), torch.rand(398, generator=gen) * 0.2 - 0.01]).double()
    A, _ = spectrum_matrix(spectrum)
    res = eigsh_topk(MatrixOperator(A), 2, which="smallest", tol=1e-6, max_basis=20, max_hvps=600)
    assert res.all_converged and res.num_hvps < 600
    assert abs(res.scale - 100.0) < 1e-6
    torch.testing.assert_close(res.eigenvalues, torch.linalg.eigvalsh(A)[:2], rtol=0, atol=1e-6 * 100)


@pytest.mark.parametrize("which", ["smallest", "both"])
@pytest.mark.parametrize("method", METHODS)
def test_bottom_pairs_converge_relative_to_their_own_eigenvalue(which, method):
    """Regression (issue 17): bottom pairs were flagged converged at ||r|| <= tol·|λmax|. With λmax = 100
    and a cluster of negative eigenvalues near −0.4 that let Ritz values 0.5–30 % off (and the second
    smallest eigenvalue missed) pass at tol 1e-3; the per-pair bound tol·|λ| finds the three smallest."""
    gen = torch.Generator().manual_seed(11)
    spectrum = torch.cat(
        [
            torch.tensor([100.0, 40.0, -0.400, -0.399, -0.397, -0.36]),
            torch.rand(494, generator=gen) * 1.2 - 0.3,  # a bulk in [−0.3, 0.9]
        ]
    ).double()
    A, _ = spectrum_matrix(spectrum)
    w = torch.linalg.eigvalsh(A)
    res = eigsh_topk(MatrixOperator(A), 3, which=which, tol=1e-3, method=method)
    bottom = res.part("smallest")
    assert bottom.all_converged
    torch.testing.assert_close(bottom.eigenvalues, w[:3], rtol=1e-3, atol=0)
    # a converged pair's eigenvalue is within its residual of the true one, and that is <= tol·|λ|
    assert bool(((bottom.eigenvalues - w[:3]).abs() <= bottom.residuals).all())
    torch.testing.assert_close(bottom.thresholds, 1e-3 * bottom.eigenvalues.abs(), rtol=0, atol=0)
    if which == "both":
        torch.testing.assert_close(
            res.part("largest").thresholds, torch.full((3,), 1e-3 * res.scale).double()
        )


def test_bottom_threshold_has_a_floor_near_zero():
    """An eigenvalue below tol·|λmax| needs an absolute accuracy tol²·|λmax|, not an unreachable relative one."""
    values = torch.tensor([10.0, -2.0, 1e-9, -1e-2], dtype=torch.float64)
    got = pair_thresholds(values, 1, 10.0, 1e-3)
    torch.testing.assert_close(got, torch.tensor([1e-2, 2e-3, 1e-5, 1e-5], dtype=torch.float64))


def test_reported_residuals_are_true_residuals(hessian_and_spectrum):
    model, x, y, w, _ = hessian_and_spectrum
    for dtype, agree in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
        op = curvature_operator(model, x, y, dtype=dtype)
        for method in ("lanczos", "block"):
            res = eigsh_topk(op, 4, which="both", tol=1e-3, method=method)
            X = res.eigenvectors
            true = (op.matmat(X.T.to(dtype)).double() - X.T * res.eigenvalues).norm(dim=0)
            assert float((true - res.residuals).abs().max()) <= agree * float(w.abs().max())
            assert bool((res.converged == (res.residuals <= res.thresholds)).all())
            expected = pair_thresholds(res.eigenvalues, 4, res.scale, 1e-3)
            torch.testing.assert_close(res.thresholds, expected, rtol=0, atol=0)


def test_near_degenerate_cluster_is_found_as_a_subspace():
    gen = torch.Generator().manual_seed(3)
    bulk = torch.rand(194, generator=gen, dtype=torch.float64) * 2 - 1
    top = torch.tensor([10.0, 8.0, 8.0 + 1e-9, 8.0 + 2e-9, 6.0, 5.0], dtype=torch.float64)
    A, Q = spectrum_matrix(torch.cat([top, bulk]))
    op = MatrixOperator(A)
    unguarded = eigsh_topk(op, 4, tol=1e-10, guard_steps=0)
    assert unguarded.all_converged  # every flag set, yet one Krylov sequence saw only part of the cluster
    assert float((unguarded.eigenvalues - top[:4].sort(descending=True).values).abs().max()) > 1
    for method in ("lanczos", "block"):
        res = eigsh_topk(op, 4, tol=1e-10, method=method)
        torch.testing.assert_close(res.eigenvalues, top[:4].sort(descending=True).values, rtol=1e-8, atol=0)
        assert abs(float((res.eigenvectors[0] @ Q[:, 0]).abs()) - 1) < 1e-6
        assert subspace_overlap(res.eigenvectors[1:4], Q[:, 1:4]) > 1 - 1e-6


@pytest.mark.parametrize("method", ["auto", "block"])
def test_warm_start_from_exact_vectors_converges_at_once(hessian_and_spectrum, method):
    model, x, y, w, U = hessian_and_spectrum
    op = curvature_operator(model, x, y)
    k = 6
    v0 = U[:, -k:].flip(1).T.contiguous()
    res = eigsh_topk(op, k, tol=1e-10, v0=v0, method=method)
    assert res.all_converged
    # k products span the (almost invariant) start space, then the default 5-step completeness check
    assert res.num_hvps <= k + 2 + 5
    assert eigsh_topk(op, k, tol=1e-10, v0=v0, method=method, guard_steps=0).num_hvps <= k + 2
    torch.testing.assert_close(res.eigenvalues, w.flip(0)[:k], rtol=1e-10, atol=0)
    assert subspace_overlap(res.eigenvectors, U[:, -k:]) > 1 - 1e-10


def test_warm_start_from_perturbed_vectors_beats_a_cold_start():
    gen = torch.Generator().manual_seed(0)
    spectrum = torch.cat(
        [
            torch.linspace(10, 2, 20, dtype=torch.float64),
            torch.rand(980, generator=gen, dtype=torch.float64) * 1.9,
        ]
    )
    A, Q = spectrum_matrix(spectrum)
    op = MatrixOperator(A)
    cold = eigsh_topk(op, 20, tol=1e-6)
    for noise in (1e-4, 1e-3):
        v0 = Q[:, :20].T + noise * torch.randn(20, 1000, generator=gen, dtype=torch.float64)
        warm = eigsh_topk(op, 20, tol=1e-6, v0=v0)
        assert cold.all_converged and warm.all_converged
        torch.testing.assert_close(warm.eigenvalues, cold.eigenvalues, rtol=1e-9, atol=0)
        assert warm.num_hvps < 0.9 * cold.num_hvps, (noise, warm.num_hvps, cold.num_hvps)


def test_too_small_budget_flags_unconverged_pairs(hessian_and_spectrum):
    model, x, y, w, _ = hessian_and_spectrum
    op = curvature_operator(model, x, y)
    k = 5
    for method in ("lanczos", "block"):
        res = eigsh_topk(op, k, tol=1e-10, max_hvps=k + 2, method=method)
        assert res.num_hvps <= k + 2
        assert not res.all_converged
        # the flags are honest both ways
        assert bool((res.converged == (res.residuals <= 1e-10 * res.scale)).all())
        assert float(res.residuals[~res.converged].min()) > 1e-10 * res.scale
        torch.testing.assert_close(res.threshold_ratios, res.residuals / (1e-10 * res.scale))


def test_float32_cannot_reach_float64_tolerance_and_says_so(hessian_and_spectrum):
    model, x, y, *_ = hessian_and_spectrum
    op = curvature_operator(model, x, y, dtype=torch.float32)
    res = eigsh_topk(op, 3, tol=1e-12, max_hvps=150)
    assert not res.all_converged
    assert res.num_hvps == 150


def test_deterministic_given_seed(hessian_and_spectrum):
    model, x, y, *_ = hessian_and_spectrum
    a = eigsh_topk(curvature_operator(model, x, y), 3, tol=1e-6, seed=7)
    b = eigsh_topk(curvature_operator(model, x, y), 3, tol=1e-6, seed=7)
    c = eigsh_topk(curvature_operator(model, x, y), 3, tol=1e-6, seed=8)
    assert torch.equal(a.eigenvalues, b.eigenvalues) and torch.equal(a.eigenvectors, b.eigenvectors)
    assert not torch.equal(a.eigenvectors, c.eigenvectors)
    torch.testing.assert_close(a.eigenvalues, c.eigenvalues, rtol=1e-6, atol=0)


def test_invariant_subspace_and_tiny_operators():
    # rank-2 matrix: Lanczos breaks down after 2 steps and must continue with fresh directions
    u = torch.randn(30, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    op = MatrixOperator(u @ u.T)
    res = eigsh_topk(op, 4, tol=1e-10)
    exact = torch.linalg.eigvalsh(u @ u.T).flip(0)[:4]
    torch.testing.assert_close(res.eigenvalues, exact, rtol=0, atol=1e-10)
    assert res.all_converged
    whole = eigsh_topk(MatrixOperator(torch.diag(torch.arange(1.0, 7.0, dtype=torch.float64))), 6, tol=1e-12)
    torch.testing.assert_close(whole.eigenvalues, torch.arange(6.0, 0.0, -1, dtype=torch.float64))


def test_full_spectrum_matches_numpy(hessian_and_spectrum):
    model, x, y, w, _ = hessian_and_spectrum
    spec = full_spectrum(curvature_operator(model, x, y))
    torch.testing.assert_close(spec.eigenvalues, w, rtol=0, atol=1e-12)
    assert spec.asymmetry < 1e-14 and spec.num_hvps == len(w)


def test_bad_requests_fail_with_the_fix(hessian_and_spectrum):
    model, x, y, *_ = hessian_and_spectrum
    op = curvature_operator(model, x, y)
    with pytest.raises(ValueError, match="max_hvps"):
        eigsh_topk(op, 10, max_hvps=5)
    with pytest.raises(ValueError, match="v0 must be"):
        eigsh_topk(op, 2, v0=torch.ones(3, op.size + 1))
    with pytest.raises(ValueError, match="which"):
        eigsh_topk(op, 2, which="middle")
    with pytest.raises(ValueError, match="method"):
        eigsh_topk(op, 2, method="arpack")
    with pytest.raises(ValueError, match="wanted pairs"):
        eigsh_topk(op, op.size + 1)
