"""Local Lanczos, the diagonal conjugation wrapper and the double-backward Hessian operator."""

from __future__ import annotations

import pytest
import torch

from hessdyn.reparam import (
    DenseOperator,
    DiagonalConjugated,
    FlatLoss,
    SymmetricOperator,
    lanczos_top_eigenvalue,
)


def _symmetric(kind: str, n: int, seed: int) -> torch.Tensor:
    a = torch.randn(n, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    if kind == "psd":
        return a @ a.T
    if kind == "dominant_negative":  # largest |λ| is negative: power iteration would return it
        return a @ a.T - 5 * n * torch.eye(n, dtype=torch.float64)
    return a + a.T


@pytest.mark.parametrize("kind", ["psd", "indefinite", "dominant_negative"])
@pytest.mark.parametrize("seed", range(3))
def test_lanczos_finds_the_largest_algebraic_eigenvalue(kind, seed):
    matrix = _symmetric(kind, 40, seed)
    values, vectors = torch.linalg.eigh(matrix)
    result = lanczos_top_eigenvalue(DenseOperator(matrix), max_iters=40)
    assert result.converged
    assert result.eigenvalue == pytest.approx(
        float(values[-1]), rel=1e-10, abs=1e-10 * float(values.abs().max())
    )
    assert abs(float(result.eigenvector @ vectors[:, -1])) == pytest.approx(1.0, abs=1e-8)


def test_lanczos_stops_early_on_a_large_well_separated_problem():
    n = 400
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=torch.Generator().manual_seed(8), dtype=torch.float64))
    values = torch.cat([torch.tensor([10.0, 5.0]), torch.linspace(0, 1, n - 2)]).double()
    result = lanczos_top_eigenvalue(DenseOperator(q @ torch.diag(values) @ q.T), max_iters=100, tol=1e-10)
    assert result.converged and result.num_matvecs < 60
    assert result.eigenvalue == pytest.approx(10.0, rel=1e-12)
    assert abs(float(result.eigenvector @ q[:, 0])) == pytest.approx(1.0, abs=1e-9)


def test_lanczos_reports_non_convergence_honestly():
    matrix = torch.diag(torch.linspace(1.0, 1.001, 200, dtype=torch.float64))  # clustered: slow
    result = lanczos_top_eigenvalue(DenseOperator(matrix), max_iters=3, tol=1e-12)
    assert not result.converged and result.residual > 1e-12 * 1.001
    assert result.num_matvecs == 4


def test_diagonal_conjugated_equals_dense_product():
    matrix = _symmetric("indefinite", 12, 5)
    d = torch.rand(12, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    d[3] = 0.0
    op = DiagonalConjugated(DenseOperator(matrix), d)
    assert isinstance(op, SymmetricOperator)
    v = torch.randn(12, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    torch.testing.assert_close(op.matvec(v), torch.diag(d) @ matrix @ torch.diag(d) @ v)
    with pytest.raises(ValueError, match="non-negative"):
        DiagonalConjugated(DenseOperator(matrix), -d)


def test_loss_hessian_matches_autograd_hessian_over_several_batches(two_layer, data, dense_hessian):
    x, y = data
    flat = FlatLoss(two_layer, [(x[:10], y[:10]), (x[10:], y[10:])])  # 10 + 14 samples: weights 10/24, 14/24
    expected = dense_hessian(two_layer, x, y)
    operator = flat.hessian()
    assert isinstance(operator, SymmetricOperator) and operator.size == 38
    columns = torch.stack([operator.matvec(e) for e in torch.eye(38, dtype=torch.float64)], dim=1)
    torch.testing.assert_close(columns, expected, rtol=1e-10, atol=1e-12)
    with torch.no_grad():
        whole = torch.nn.functional.cross_entropy(two_layer(x), y).item()
        assert flat(flat.theta).item() == pytest.approx(whole, rel=1e-13)
