"""Hutchinson, Hutch++ and stochastic Lanczos quadrature against the exact spectrum."""

import numpy as np
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


def _two_clusters_and_outliers() -> torch.Tensor:
    """P = 403: two bulk clusters 0.4 wide with a 0.4 gap, and outliers up to 40 that set the node range."""
    gen = torch.Generator().manual_seed(2)
    low = torch.rand(200, generator=gen, dtype=torch.float64) * 0.4
    high = 0.8 + torch.rand(200, generator=gen, dtype=torch.float64) * 0.4
    return torch.cat([low, high, torch.tensor([10.0, 20.0, 40.0], dtype=torch.float64)])


def _gap_contrast(res) -> float:
    """Density in the middle of the gap over the smaller of the two clusters' mean densities."""
    g, d = res.grid, res.density

    def mean_on(a: float, b: float) -> float:
        return float(d[(g >= a) & (g <= b)].mean())

    return mean_on(0.55, 0.65) / min(mean_on(0.1, 0.3), mean_on(0.9, 1.1))


def test_slq_default_sigma_resolves_two_bulk_clusters():
    """Regression (issue 17): σ = 1 % of the node range (0.4 here, set by the outlier at 40) blurred two
    bulk clusters into one; the node-spacing default keeps the gap between them empty."""
    A, _ = spectrum_matrix(_two_clusters_and_outliers())
    op = MatrixOperator(A)
    res = spectral_density(op, num_probes=10, num_steps=40, seed=0)
    assert res.sigma_rule == "node spacing"
    assert res.sigma < 0.05
    assert _gap_contrast(res) < 0.05
    old = spectral_density(
        op, num_probes=10, num_steps=40, seed=0, sigma=0.01 * float(res.nodes.max() - res.nodes.min())
    )
    assert old.sigma_rule == "given"
    assert _gap_contrast(old) > 0.5  # what the former default drew: no gap


def test_slq_sigma_is_the_median_gap_between_neighbouring_nodes():
    A, _ = spectrum_matrix(_two_clusters_and_outliers())
    res = spectral_density(MatrixOperator(A), num_probes=4, num_steps=25, seed=3)
    gaps = [np.diff(np.sort(t[w > 0])) for t, w in zip(res.nodes.numpy(), res.weights.numpy(), strict=True)]
    assert res.sigma == pytest.approx(float(np.median(np.concatenate(gaps))), rel=1e-12)
    finer = spectral_density(MatrixOperator(A), num_probes=4, num_steps=60, seed=3)
    assert finer.sigma < 0.6 * res.sigma  # more steps, more nodes, finer resolution


@pytest.mark.parametrize("seed", [0, 1])
def test_slq_moments_match_traces_within_error_bars(seed):
    """The density's moments (node weights) against tr(A)/P and tr(A²)/P of a dense spectrum, within three
    standard errors; the broadened curve carries σ² more in its second moment, and says so."""
    spectrum = _two_clusters_and_outliers()
    A, _ = spectrum_matrix(spectrum)
    n = spectrum.numel()
    res = spectral_density(MatrixOperator(A), num_probes=30, num_steps=40, seed=seed, num_grid=20000)
    for p in (1, 2):
        exact = float(spectrum.pow(p).mean())
        assert abs(res.moment(p) - exact) <= 3 * res.moment_se(p), (p, res.moment(p), exact)
        # Hutchinson's tr(A^p)/P from the same probes: quadrature is exact for p < 2·num_steps
        Z = rademacher(n, 30, torch.Generator().manual_seed(seed), "cpu")
        hutch = (Z * (torch.linalg.matrix_power(A, p) @ Z)).sum(0) / n
        torch.testing.assert_close(res.per_probe_moments(p), hutch, rtol=1e-10, atol=1e-12)
    # the curve: unit mass, mean moment(1), second moment moment(2) + σ² (up to the h²/12 of the cells)
    h = float(res.grid[1] - res.grid[0])
    mass = float((res.density * h).sum())
    m1 = float((res.density * res.grid * h).sum())
    m2 = float((res.density * res.grid.pow(2) * h).sum())
    assert mass == pytest.approx(1, abs=1e-6)  # the tails past ±5σ are outside the grid
    assert m1 == pytest.approx(res.moment(1), abs=1e-6)
    assert m2 == pytest.approx(res.moment(2) + res.sigma**2 - h**2 / 12, abs=1e-6)


def test_slq_cell_averages_keep_mass_on_a_coarse_grid():
    A, _ = spectrum_matrix(_two_clusters_and_outliers())
    res = spectral_density(MatrixOperator(A), num_probes=3, num_steps=30, seed=0, num_grid=40)
    h = float(res.grid[1] - res.grid[0])
    assert h > 10 * res.sigma  # far coarser than the broadening
    assert float((res.density * h).sum()) == pytest.approx(1, abs=1e-9)
    with pytest.raises(ValueError, match="sigma"):
        spectral_density(MatrixOperator(A), num_probes=2, num_steps=5, sigma=0.0)
