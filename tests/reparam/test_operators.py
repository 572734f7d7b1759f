"""The flat-θ view of the empirical risk that the sharpness measures evaluate (EmpiricalRisk.loss_at)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hessdyn.curvature import EmpiricalRisk, HessianMode, HessianOperator


def test_flat_view_matches_autograd_hessian_and_loss_over_several_batches(two_layer, data, dense_hessian):
    x, y = data
    risk = EmpiricalRisk(two_layer, x, y, batch_size=10)  # 10 + 10 + 4 samples: weights 10/24, 10/24, 4/24
    theta = risk.flat_params()
    expected = dense_hessian(two_layer, x, y)
    assert risk.size == 38
    of_view = torch.autograd.functional.hessian(risk.loss_at, theta)
    torch.testing.assert_close(of_view, expected, rtol=1e-10, atol=1e-12)
    columns = HessianOperator(risk).matmat(torch.eye(38, dtype=torch.float64))
    torch.testing.assert_close(columns, expected, rtol=1e-10, atol=1e-12)
    with torch.no_grad():
        whole = torch.nn.functional.cross_entropy(two_layer(x), y).item()
        assert risk.loss_at(theta).item() == pytest.approx(whole, rel=1e-13)
    assert risk.loss_at(theta).item() == pytest.approx(risk.loss_and_gradient().loss, rel=1e-13)


def test_flat_view_includes_the_modes_weight_decay_and_evaluates_in_eval_mode(data):
    x, y = data
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Dropout(0.5), nn.Linear(5, 3)).double().train()
    c = 0.3
    risk = EmpiricalRisk(model, x, y, mode=HessianMode(weight_decay=c))
    theta = risk.flat_params()
    with torch.no_grad():
        data_term = torch.nn.functional.cross_entropy(model.eval()(x), y).item()
        model.train()
        first, second = risk.loss_at(theta).item(), risk.loss_at(theta).item()
    assert first == second  # dropout is off: the loss is a function of θ
    assert first == pytest.approx(data_term + 0.5 * c * float(theta @ theta), rel=1e-13)
    theta_var = theta.clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(risk.loss_at(theta_var), theta_var)
    torch.testing.assert_close(gradient, risk.loss_and_gradient().gradient, rtol=1e-12, atol=1e-14)
    assert model.training  # the caller's model is untouched
    with pytest.raises(ValueError, match=r"expected a \(38,\) parameter vector"):
        risk.loss_at(theta[:-1])
