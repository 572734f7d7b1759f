"""Per-example weights in the empirical risk: Hessian, GGN and gradient of Σ_n w_n ℓ_n against dense references."""

import pytest
import torch
import torch.nn.functional as F

from hessdyn.curvature import EmpiricalRisk, curvature_operator, dense_matrix, flat_gradient

from .cases import MLPS, data, flat_function, reference_hessian

TANH = MLPS[0]


def weights(n: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(7)
    return torch.rand(n, generator=gen, dtype=torch.float64) * 10


def weighted_loss(logits: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return (F.cross_entropy(logits, y, reduction="none") * w).sum() / w.sum()


@pytest.mark.parametrize("batch_size", [None, 5])
def test_weighted_hessian_and_gradient_match_dense_reference(batch_size):
    model = TANH.build()
    x, y = data()
    w = weights(x.shape[0])
    logits, theta = flat_function(model, x)
    H = torch.autograd.functional.hessian(lambda t: weighted_loss(logits(t), y, w), theta)
    g = torch.autograd.functional.jacobian(lambda t: weighted_loss(logits(t), y, w), theta)
    for backend in ("double_backward", "forward_over_reverse"):
        op = curvature_operator(model, x, y, batch_size=batch_size, backend=backend, sample_weights=w)
        torch.testing.assert_close(dense_matrix(op), H, rtol=0, atol=1e-10 * float(H.abs().max()))
    grad = flat_gradient(model, x, y, batch_size=batch_size, sample_weights=w)
    torch.testing.assert_close(grad, g, rtol=0, atol=1e-12 * float(g.abs().max()))


def test_weighted_ggn_matches_dense_reference():
    model = TANH.build()
    x, y = data()
    w = weights(x.shape[0])
    w = w / w.sum()
    logits, theta = flat_function(model, x)
    J = torch.autograd.functional.jacobian(logits, theta)  # (N, C, P)
    p = torch.softmax(logits(theta), dim=1).detach()
    HL = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
    G = torch.einsum("n,ncp,ncd,ndq->pq", w, J, HL, J)
    op = curvature_operator(model, x, y, curvature="ggn", batch_size=7, sample_weights=w * 3)
    torch.testing.assert_close(dense_matrix(op), G, rtol=0, atol=1e-10 * float(G.abs().max()))


def test_equal_weights_reproduce_the_unweighted_risk():
    model = TANH.build()
    x, y = data()
    H = reference_hessian(model, x, y)
    op = curvature_operator(model, x, y, batch_size=7, sample_weights=torch.full((x.shape[0],), 2.5))
    torch.testing.assert_close(dense_matrix(op), H, rtol=0, atol=1e-10 * float(H.abs().max()))


def test_loss_value_is_the_weighted_mean():
    model = TANH.build()
    x, y = data()
    w = weights(x.shape[0])
    with torch.no_grad():
        expected = float(weighted_loss(model.eval()(x), y, w))
    assert EmpiricalRisk(
        model, x, y, sample_weights=w, batch_size=5
    ).loss_and_gradient().loss == pytest.approx(expected, rel=1e-13)


@pytest.mark.parametrize(
    "bad, match",
    [
        (torch.ones(3), "3 entries for 24 examples"),
        (-torch.ones(24), "non-negative"),
        (torch.zeros(24), "positive sum"),
        (torch.full((24,), float("nan")), "finite"),
    ],
)
def test_bad_sample_weights_are_refused(bad, match):
    x, y = data()
    with pytest.raises(ValueError, match=match):
        EmpiricalRisk(TANH.build(), x, y, sample_weights=bad)
