"""The Gauss–Newton operator against Jᵀ·H_loss·J built from an explicit Jacobian."""

import pytest
import torch

from hessdyn.curvature import curvature_operator, dense_matrix

from .cases import BN, LINEAR, MLPS, data, flat_function, reference_ggn, reference_hessian


@pytest.mark.parametrize("batch_size", [None, 7])
@pytest.mark.parametrize("case", [*MLPS, BN], ids=lambda c: c.name)
def test_ggn_equals_jt_hloss_j(case, batch_size):
    model = case.build()
    x, y = data()
    G = dense_matrix(curvature_operator(model, x, y, curvature="ggn", batch_size=batch_size))
    ref = reference_ggn(model, x, y)
    torch.testing.assert_close(G, ref, rtol=0, atol=1e-12 * float(ref.abs().max()))


def test_ggn_is_psd_and_differs_from_the_hessian():
    model = MLPS[2].build()
    x, y = data()
    G = dense_matrix(curvature_operator(model, x, y, curvature="ggn"))
    H = dense_matrix(curvature_operator(model, x, y))
    w = torch.linalg.eigvalsh(0.5 * (G + G.T))
    assert float(w.min()) >= -1e-13 * float(w.max())
    assert float(torch.linalg.eigvalsh(H).min()) < -1e-4  # the Hessian here is indefinite
    assert float((G - H).abs().max()) > 1e-3 * float(H.abs().max())


def test_ggn_equals_hessian_for_a_linear_model():
    model = LINEAR.build()
    x, y = data()
    G = dense_matrix(curvature_operator(model, x, y, curvature="ggn"))
    H = reference_hessian(model, x, y)
    torch.testing.assert_close(G, H, rtol=0, atol=1e-14)


def test_ggn_with_a_custom_loss_is_jt_j_over_n_for_squared_error():
    model = MLPS[0].build()
    x, y = data()

    def half_squared_error(logits, labels):
        onehot = torch.nn.functional.one_hot(labels, logits.shape[1]).to(logits.dtype)
        return 0.5 * (logits - onehot).pow(2).sum(1).mean()

    G = dense_matrix(
        curvature_operator(model, x, y, curvature="ggn", loss_fn=half_squared_error, batch_size=5)
    )
    logits, theta0 = flat_function(model, x)
    J = torch.autograd.functional.jacobian(logits, theta0).reshape(-1, theta0.numel())
    torch.testing.assert_close(G, J.T @ J / x.shape[0], rtol=0, atol=1e-13)
