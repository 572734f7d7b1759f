"""α-rescaling: the function is preserved, the model is copied, and the Hessian changes as predicted."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from hessdyn.curvature import MatrixOperator
from hessdyn.reparam import (
    alpha_grid,
    alpha_rescale,
    max_output_difference,
    predicted_rescaled_hessian,
    predicted_rescaled_operator,
    rescalable_layers,
)
from hessdyn.solvers import eigsh_topk


def _nested_model(dtype: torch.dtype) -> nn.Sequential:
    torch.manual_seed(2)
    inner = nn.Sequential(nn.Linear(8, 6), nn.LeakyReLU(0.1), nn.Dropout(0.3))
    model = nn.Sequential(
        nn.Flatten(), inner, nn.Identity(), nn.Linear(6, 5, bias=False), nn.ReLU(), nn.Linear(5, 2)
    )
    return model.to(dtype)


@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float64, 1e-12), (torch.float32, 1e-6)])
def test_outputs_are_unchanged_and_input_model_untouched(dtype, tolerance):
    model = _nested_model(dtype)
    model.train()  # dropout active in the caller's model: the comparison must still be deterministic
    before = {name: p.clone() for name, p in model.state_dict().items()}
    x = torch.randn(16, 2, 4, generator=torch.Generator().manual_seed(3)).to(dtype)
    result = alpha_rescale(model, [4.0, 0.1, 2.5])
    assert result.model is not model
    for name, p in model.state_dict().items():
        assert torch.equal(p, before[name]), name
    assert model.training  # the caller's mode is untouched
    with torch.no_grad():
        scale = float(model.eval()(x).abs().max())
    model.train()
    assert max_output_difference(model, result.model, x) <= tolerance * max(scale, 1.0)
    # the parameters did change, by the stated factors
    rescaled = dict(result.model.named_parameters())
    torch.testing.assert_close(rescaled["1.0.weight"], 4.0 * before["1.0.weight"])
    torch.testing.assert_close(rescaled["1.0.bias"], 4.0 * before["1.0.bias"])
    torch.testing.assert_close(rescaled["3.weight"], 0.1 * before["3.weight"])
    torch.testing.assert_close(rescaled["5.weight"], 2.5 * before["5.weight"])
    torch.testing.assert_close(rescaled["5.bias"], before["5.bias"])  # 4 · 0.1 · 2.5 = 1


def test_parameter_scale_lines_up_with_named_parameters():
    model = _nested_model(torch.float64)
    result = alpha_rescale(model, [4.0, 0.1, 2.5])
    expected = torch.cat(
        [
            torch.full((48,), 4.0),
            torch.full((6,), 4.0),
            torch.full((30,), 0.1),
            torch.full((10,), 2.5),
            torch.full((2,), 1.0),
        ]
    ).double()
    torch.testing.assert_close(result.parameter_scale, expected)
    rescaled = torch.cat([p.detach().reshape(-1) for p in result.model.parameters()])
    original = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    torch.testing.assert_close(rescaled, result.parameter_scale * original)
    assert [name for name, _ in rescalable_layers(model)] == ["1.0", "3", "5"]


@pytest.mark.parametrize("activation", [nn.Tanh, nn.Sigmoid, nn.GELU, nn.Softplus])
def test_non_homogeneous_activations_are_refused_by_name(activation):
    model = nn.Sequential(nn.Linear(3, 4), nn.Sequential(activation()), nn.Linear(4, 2))
    with pytest.raises(ValueError, match=activation.__name__):
        alpha_rescale(model, [2.0, 0.5])


def test_other_refusals():
    with pytest.raises(ValueError, match="Sequential"):
        alpha_rescale(nn.Linear(3, 3), [1.0])
    with pytest.raises(ValueError, match="Conv2d"):
        rescalable_layers(nn.Sequential(nn.Conv2d(1, 1, 3), nn.Flatten(), nn.Linear(4, 2)))
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    with pytest.raises(ValueError, match="multiply to 1"):
        alpha_rescale(model, [2.0, 2.0])
    with pytest.raises(ValueError, match="positive"):
        alpha_rescale(model, [-2.0, -0.5])
    with pytest.raises(ValueError, match="3 scalings for 2"):
        alpha_rescale(model, [2.0, 0.5, 1.0])


def test_alpha_grid_scales_first_and_last_layers():
    grid = alpha_grid(4, [0.5, 10.0])
    assert [point.alpha for point in grid] == [0.5, 10.0]
    assert grid[1].scalings == (10.0, 1.0, 1.0, 0.1)
    assert all(math.isclose(math.prod(point.scalings), 1.0) for point in grid)
    with pytest.raises(ValueError, match="at least 2"):
        alpha_grid(1, [2.0])


@pytest.mark.parametrize("alpha", [0.2, 3.0, 25.0])
def test_hessian_transforms_by_the_block_scaling(two_layer, data, dense_hessian, alpha):
    x, y = data
    result = alpha_rescale(two_layer, [alpha, 1 / alpha])
    hessian = dense_hessian(two_layer, x, y)
    rescaled = dense_hessian(result.model, x, y)
    scale = float(hessian.abs().max())
    torch.testing.assert_close(
        rescaled,
        predicted_rescaled_hessian(hessian, result.parameter_scale),
        rtol=1e-9,
        atol=1e-12 * scale * max(alpha, 1 / alpha) ** 2,
    )
    # blocks: W1 (entries 0..14) by 1/α², W2 (20..34) by α², cross block W1-W2 unchanged
    torch.testing.assert_close(rescaled[:15, :15], hessian[:15, :15] / alpha**2, rtol=1e-9, atol=1e-13)
    torch.testing.assert_close(
        rescaled[20:35, 20:35], hessian[20:35, 20:35] * alpha**2, rtol=1e-9, atol=1e-13
    )
    torch.testing.assert_close(rescaled[:15, 20:35], hessian[:15, 20:35], rtol=1e-9, atol=1e-13)
    # λ_max moves, and exactly to the top eigenvalue of T⁻¹HT⁻¹
    lambda_max = float(torch.linalg.eigvalsh(hessian)[-1])
    rescaled_max = float(torch.linalg.eigvalsh(rescaled)[-1])
    predicted = float(
        eigsh_topk(
            predicted_rescaled_operator(MatrixOperator(hessian), result.parameter_scale), 1, tol=1e-12
        ).eigenvalues[0]
    )
    assert predicted == pytest.approx(rescaled_max, rel=1e-9)
    assert abs(rescaled_max - lambda_max) > 0.05 * lambda_max
