"""The hand-derived backward of tr(H), tr(H²) and the logits (HSR's training step) against autograd through
the closed form (an independent reverse pass over the same formulas), in float64."""

from __future__ import annotations

import pytest
import torch

from hessdyn.curvature.three_layer_factors import three_layer_params
from hessdyn.curvature.three_layer_grad import exact_traces_with_gradient
from hessdyn.curvature.three_layer_traces import trace_terms
from hessdyn.models import ThreeLayerNet


def _case(activation: str, bias: bool, n: int = 13, d: int = 7, h: int = 5, c: int = 4, seed: int = 0):
    torch.manual_seed(seed)
    model = ThreeLayerNet((d,), h, c, activation=activation, bias=bias).double()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(2.5)  # confident, uneven softmax outputs and saturated units
    gen = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    y = torch.randint(0, c, (n,), generator=gen)
    w = torch.rand(n, generator=gen, dtype=torch.float64) + 0.05
    return model, x, y, w


def _grads(outputs, model, coefficients):
    trace, trace_sq, logits = outputs
    loss = coefficients[0] * trace + coefficients[1] * trace_sq + (coefficients[2] * logits).sum()
    return torch.autograd.grad(loss, list(model.parameters()))


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "softplus"])
@pytest.mark.parametrize("hidden", [5, 1])
def test_hand_derived_gradient_equals_autograd_through_the_closed_form(
    activation: str, bias: bool, hidden: int
) -> None:
    model, x, y, w = _case(activation, bias, h=hidden)
    params = three_layer_params(model)
    gen = torch.Generator().manual_seed(7)
    coefficients = (
        torch.randn((), generator=gen, dtype=torch.float64),
        torch.randn((), generator=gen, dtype=torch.float64),
        torch.randn(x.shape[0], 4, generator=gen, dtype=torch.float64),
    )
    fused = exact_traces_with_gradient(params, x, y, w)
    reference = trace_terms(params, x, y, w, block_size=x.shape[0])
    assert float(fused.trace.detach()) == pytest.approx(float(reference.trace.detach()), rel=1e-13)
    assert float(fused.trace_sq.detach()) == pytest.approx(float(reference.trace_sq.detach()), rel=1e-13)
    torch.testing.assert_close(fused.logits, reference.logits, rtol=0, atol=0)
    got = _grads((fused.trace, fused.trace_sq, fused.logits), model, coefficients)
    want = _grads((reference.trace, reference.trace_sq, reference.logits), model, coefficients)
    for name, g, r in zip([n for n, _ in model.named_parameters()], got, want, strict=True):
        assert float((g - r).norm() / r.norm()) < 1e-10, name


def test_each_output_alone_and_softplus_in_its_linear_region() -> None:
    model, x, y, w = _case("softplus", True, seed=3)
    with torch.no_grad():
        model.hidden.bias[:2] += 40.0  # two units past torch's threshold 20: φ' = 1, φ'' = φ''' = 0
    params = three_layer_params(model)
    for k in range(3):
        coefficients = [0.0, 0.0, torch.zeros(x.shape[0], 4, dtype=torch.float64)]
        coefficients[k] = 1.0 if k < 2 else torch.ones(x.shape[0], 4, dtype=torch.float64)
        fused = exact_traces_with_gradient(params, x, y, w)
        got = _grads((fused.trace, fused.trace_sq, fused.logits), model, coefficients)
        ref = trace_terms(params, x, y, w, block_size=x.shape[0])
        want = _grads((ref.trace, ref.trace_sq, ref.logits), model, coefficients)
        for g, r in zip(got, want, strict=True):
            torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-14)
