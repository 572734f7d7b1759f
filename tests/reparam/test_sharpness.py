"""Sharpness measures: values against independent computations, and their (non-)invariance under α."""

from __future__ import annotations

import pytest
import torch

from hessdyn.curvature import EmpiricalRisk, HessianOperator, MatrixOperator
from hessdyn.reparam import (
    alpha_rescale,
    epsilon_sharpness,
    quadratic_form,
    scale_invariant_operator,
    sharpness_measures,
)


def _dense_top(operator) -> float:
    """Top eigenvalue by materializing the operator (tiny P), independent of the Lanczos solver."""
    columns = torch.stack([operator.matvec(e) for e in torch.eye(operator.size, dtype=torch.float64)], dim=1)
    return float(torch.linalg.eigvalsh(0.5 * (columns + columns.T))[-1])


def test_measures_equal_dense_computations(two_layer, data, dense_hessian):
    x, y = data
    flat = EmpiricalRisk(two_layer, x, y)
    hessian = dense_hessian(two_layer, x, y)
    theta = flat.flat_params()
    calls = []

    def exact_trace(operator):
        calls.append(operator)
        return float(
            sum(operator.matvec(e)[i] for i, e in enumerate(torch.eye(operator.size, dtype=torch.float64)))
        )

    measures = sharpness_measures(flat, trace=exact_trace, epsilon=None)
    assert measures.lambda_max == pytest.approx(float(torch.linalg.eigvalsh(hessian)[-1]), rel=1e-8)
    assert measures.trace == pytest.approx(float(torch.trace(hessian)), rel=1e-10)
    assert measures.theta_hessian_theta == pytest.approx(float(theta @ hessian @ theta), rel=1e-10)
    scaled = theta.abs()[:, None] * hessian * theta.abs()[None, :]
    assert measures.scale_invariant_lambda_max == pytest.approx(
        float(torch.linalg.eigvalsh(scaled)[-1]), rel=1e-8
    )
    assert measures.epsilon_sharpness is None and len(calls) == 1


def test_injected_operator_and_eigensolver_are_used(two_layer, data, dense_hessian):
    x, y = data
    hessian = dense_hessian(two_layer, x, y)
    seen = []

    def solver(operator):
        seen.append(operator.size)
        return _dense_top(operator)

    measures = sharpness_measures(
        EmpiricalRisk(two_layer, x, y), hessian=MatrixOperator(hessian), top_eigenvalue=solver, epsilon=None
    )
    assert seen == [38, 38]
    assert measures.lambda_max == pytest.approx(float(torch.linalg.eigvalsh(hessian)[-1]), rel=1e-10)


@pytest.mark.parametrize("alpha", [0.1, 7.0])
def test_invariance_under_alpha_rescaling(two_layer, data, alpha):
    x, y = data
    original = EmpiricalRisk(two_layer, x, y)
    rescaled = EmpiricalRisk(alpha_rescale(two_layer, [alpha, 1 / alpha]).model, x, y)
    h, h_rescaled = HessianOperator(original), HessianOperator(rescaled)
    theta, theta_rescaled = original.flat_params(), rescaled.flat_params()
    # not invariant
    assert abs(_dense_top(h_rescaled) / _dense_top(h) - 1) > 0.1
    # exactly invariant (to round-off)
    assert quadratic_form(h_rescaled, theta_rescaled) == pytest.approx(quadratic_form(h, theta), rel=1e-9)
    assert _dense_top(scale_invariant_operator(h_rescaled, theta_rescaled)) == pytest.approx(
        _dense_top(scale_invariant_operator(h, theta)), rel=1e-9
    )
    # ε-sharpness: invariant with a purely relative box (offset 0), not with Keskar's +1
    kwargs = dict(epsilon=0.05, steps=10, seed=3)
    relative = epsilon_sharpness(original.loss_at, theta, offset=0.0, **kwargs)
    relative_rescaled = epsilon_sharpness(rescaled.loss_at, theta_rescaled, offset=0.0, **kwargs)
    assert relative_rescaled.relative_increase_percent == pytest.approx(
        relative.relative_increase_percent, rel=1e-8
    )
    keskar = epsilon_sharpness(original.loss_at, theta, offset=1.0, **kwargs)
    keskar_rescaled = epsilon_sharpness(rescaled.loss_at, theta_rescaled, offset=1.0, **kwargs)
    assert abs(keskar_rescaled.relative_increase_percent / keskar.relative_increase_percent - 1) > 0.05


def test_epsilon_sharpness_finds_the_corner_maximum_of_a_quadratic():
    # L(θ) = ½ Σ a_i θ_i² with a_i > 0: the box maximum is at the corner |θ_i| + r_i, r_i = ε(|θ_i| + 1)
    a = torch.tensor([1.0, 4.0, 0.5, 2.0], dtype=torch.float64)
    theta = torch.tensor([0.3, -1.2, 2.0, -0.1], dtype=torch.float64)

    def loss(t: torch.Tensor) -> torch.Tensor:
        return 0.5 * (a * t**2).sum()

    result = epsilon_sharpness(loss, theta, epsilon=0.01, steps=10, seed=0)
    radius = 0.01 * (theta.abs() + 1)
    base = float(loss(theta))
    expected_max = float(0.5 * (a * (theta.abs() + radius) ** 2).sum())
    assert result.loss == pytest.approx(base, rel=1e-14)
    assert result.max_loss == pytest.approx(expected_max, rel=1e-12)
    assert result.relative_increase_percent == pytest.approx(
        100 * (expected_max - base) / (1 + base), rel=1e-10
    )


def test_epsilon_sharpness_is_seeded_and_does_not_touch_the_model(two_layer, data):
    x, y = data
    before = [p.clone() for p in two_layer.parameters()]
    risk = EmpiricalRisk(two_layer, x, y)
    a = epsilon_sharpness(risk.loss_at, risk.flat_params(), epsilon=0.01, steps=5, seed=1)
    b = epsilon_sharpness(risk.loss_at, risk.flat_params(), epsilon=0.01, steps=5, seed=1)
    assert a == b
    assert a.max_loss >= a.loss
    assert all(torch.equal(p, q) for p, q in zip(two_layer.parameters(), before, strict=True))
