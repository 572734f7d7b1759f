"""Σ_i θ_i² H_ii: value against a dense computation, exact invariance under α-rescaling where tr(H) moves."""

from __future__ import annotations

import pytest
import torch

from hessdyn.curvature import EmpiricalRisk, HessianOperator, ParamLayout
from hessdyn.reparam import alpha_rescale, weighted_hessian_diagonal
from hessdyn.solvers import bekas_diagonal


def test_value_blocks_and_standard_error_by_hand():
    theta = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    diag = torch.tensor([3.0, -1.0, 8.0], dtype=torch.float64)
    layout = ParamLayout(("w", "b"), (torch.Size([2]), torch.Size([1])))
    result = weighted_hessian_diagonal(theta, diag, hessian_se=torch.tensor([0.1, 0.2, 0.4]), layout=layout)
    assert result.value == pytest.approx(3.0 - 4.0 + 2.0)
    assert result.per_block == (("w", pytest.approx(-1.0)), ("b", pytest.approx(2.0)))
    assert result.standard_error == pytest.approx((0.01 + 16 * 0.04 + 0.0625 * 0.16) ** 0.5)
    with pytest.raises(ValueError, match="entries"):
        weighted_hessian_diagonal(theta, diag[:2])


def test_it_is_the_trace_of_the_scale_invariant_operator(two_layer, data, dense_hessian):
    x, y = data
    H = dense_hessian(two_layer, x, y)
    theta = torch.cat([p.detach().reshape(-1) for p in two_layer.parameters()])
    D = torch.diag(theta.abs())
    assert weighted_hessian_diagonal(theta, H.diagonal()).value == pytest.approx(
        float(torch.trace(D @ H @ D)), rel=1e-12
    )


@pytest.mark.parametrize("alpha", [0.1, 7.0])
def test_exactly_invariant_under_alpha_rescaling_where_the_trace_is_not(
    two_layer, data, dense_hessian, alpha
):
    x, y = data
    rescaled = alpha_rescale(two_layer, [alpha, 1 / alpha])
    H, H_rescaled = dense_hessian(two_layer, x, y), dense_hessian(rescaled.model, x, y)
    theta = torch.cat([p.detach().reshape(-1) for p in two_layer.parameters()])
    theta_rescaled = torch.cat([p.detach().reshape(-1) for p in rescaled.model.parameters()])
    layout = ParamLayout.from_model(two_layer)
    before = weighted_hessian_diagonal(theta, H.diagonal(), layout=layout)
    after = weighted_hessian_diagonal(theta_rescaled, H_rescaled.diagonal(), layout=layout)
    assert abs(float(torch.trace(H_rescaled)) / float(torch.trace(H)) - 1) > 0.1
    assert after.value == pytest.approx(before.value, rel=1e-9)
    for (name, a), (_, b) in zip(after.per_block, before.per_block, strict=True):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-14), name


def test_with_a_stochastic_diagonal_the_estimate_brackets_the_exact_value(two_layer, data, dense_hessian):
    x, y = data
    H = dense_hessian(two_layer, x, y)
    risk = EmpiricalRisk(two_layer, x, y)
    theta = risk.flat_params()
    exact = weighted_hessian_diagonal(theta, H.diagonal()).value
    diag = bekas_diagonal(HessianOperator(risk), num_probes=300, seed=2, block_size=50)
    estimate = weighted_hessian_diagonal(theta, diag.diagonal, hessian_se=diag.standard_error)
    assert abs(estimate.value - exact) < 4 * estimate.standard_error
    assert estimate.standard_error > 0
