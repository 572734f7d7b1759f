"""HSR regularization: U_WS of the minibatch Hessian and its gradient, against finite differences and
against autograd through the dense Hessian; the config-layer refusals."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from hessdyn.config import schema as s
from hessdyn.config.errors import ConfigValueError
from hessdyn.config.flat_minima import SMOOTH_ACTIVATIONS, check_regularizer
from hessdyn.curvature.three_layer_factors import SMOOTH_ACTIVATIONS as CLOSED_FORM_SMOOTH
from hessdyn.models import MLP, ThreeLayerNet
from hessdyn.models.mlp import SMOOTH_ACTIVATIONS as MODEL_SMOOTH
from hessdyn.training.hsr import hsr_penalty, ws_upper_bound
from hessdyn.trajectory import ws_bound_from_matrix, ws_bound_from_traces


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _tiny(
    activation: str = "tanh", bias: bool = True, seed: int = 0
) -> tuple[ThreeLayerNet, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    model = ThreeLayerNet((3,), 3, 3, activation=activation, bias=bias).double()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(2.0)
    gen = torch.Generator().manual_seed(seed + 100)
    return (
        model,
        torch.randn(6, 3, generator=gen, dtype=torch.float64),
        torch.randint(0, 3, (6,), generator=gen),
    )


def _flat(model: ThreeLayerNet) -> tuple[list[str], list[torch.Size], torch.Tensor]:
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    return names, shapes, torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def _unflatten(theta: torch.Tensor, names, shapes) -> dict[str, torch.Tensor]:
    out, offset = {}, 0
    for name, shape in zip(names, shapes, strict=True):
        out[name] = theta[offset : offset + shape.numel()].reshape(shape)
        offset += shape.numel()
    return out


def _gradient(model: ThreeLayerNet, x, y, beta: float = 1.0) -> torch.Tensor:
    model.zero_grad(set_to_none=True)
    hsr_penalty(model, x, y, beta).penalty.backward()
    return torch.cat([p.grad.reshape(-1) for p in model.parameters()])


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "softplus"])
def test_bound_is_the_ws_bound_of_the_dense_minibatch_hessian(activation: str) -> None:
    model, x, y = _tiny(activation)
    names, shapes, theta = _flat(model)
    H = torch.autograd.functional.hessian(
        lambda t: F.cross_entropy(functional_call(model, _unflatten(t, names, shapes), (x,)), y), theta
    )
    reference = ws_bound_from_matrix(H)
    term = hsr_penalty(model, x, y, 0.25)
    assert float(term.bound.detach()) == pytest.approx(reference.upper, rel=1e-10)
    assert float(term.penalty.detach()) == pytest.approx(0.25 * reference.upper, rel=1e-10)
    assert term.trace == pytest.approx(float(H.trace()), rel=1e-10)
    assert term.trace_sq == pytest.approx(float((H * H).sum()), rel=1e-10)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "softplus"])
def test_gradient_matches_central_finite_differences(activation: str, bias: bool) -> None:
    model, x, y = _tiny(activation, bias, seed=1)
    grad = _gradient(model, x, y)
    names, shapes, theta = _flat(model)
    probe = ThreeLayerNet((3,), 3, 3, activation=activation, bias=bias).double()

    def bound(t: torch.Tensor) -> float:
        with torch.no_grad():
            for p, v in zip(probe.parameters(), _unflatten(t, names, shapes).values(), strict=True):
                p.copy_(v)
        return float(hsr_penalty(probe, x, y, 1.0).bound.detach())

    step = 1e-5
    fd = torch.zeros_like(theta)
    for i in range(theta.numel()):
        e = torch.zeros_like(theta)
        e[i] = step
        fd[i] = (bound(theta + e) - bound(theta - e)) / (2 * step)
    assert float((grad - fd).norm() / fd.norm()) < 1e-6


def test_gradient_matches_autograd_through_the_dense_hessian() -> None:
    """d/dθ of μ + s·sqrt(P−1) with H(θ) built by torch.autograd.functional.hessian(create_graph=True)."""
    model, x, y = _tiny("sigmoid", seed=2)
    names, shapes, theta = _flat(model)
    theta = theta.clone().requires_grad_(True)
    H = torch.autograd.functional.hessian(
        lambda t: F.cross_entropy(functional_call(model, _unflatten(t, names, shapes), (x,)), y),
        theta,
        create_graph=True,
    )
    size = theta.numel()
    mean = torch.trace(H) / size
    upper = mean + torch.sqrt((H * H).sum() / size - mean**2) * math.sqrt(size - 1)
    (reference,) = torch.autograd.grad(upper, theta)
    grad = _gradient(model, x, y, beta=3.0)
    assert float((grad - 3.0 * reference).norm() / (3.0 * reference).norm()) < 1e-9


def test_weighted_minibatch_and_model_left_unchanged() -> None:
    model, x, y = _tiny("softplus", seed=3)
    before = [p.detach().clone() for p in model.parameters()]
    weights = torch.linspace(0.1, 1.0, 6, dtype=torch.float64)
    names, shapes, theta = _flat(model)
    H = torch.autograd.functional.hessian(
        lambda t: (
            weights
            * F.cross_entropy(functional_call(model, _unflatten(t, names, shapes), (x,)), y, reduction="none")
        ).sum(),
        theta,
    )
    term = hsr_penalty(model, x, y, 1.0, weights=weights)
    assert float(term.bound.detach()) == pytest.approx(ws_bound_from_matrix(H).upper, rel=1e-10)
    assert all(torch.equal(a, b.detach()) for a, b in zip(before, model.parameters(), strict=True))
    assert all(p.grad is None for p in model.parameters())


def test_tensor_bound_equals_the_float_bound() -> None:
    for trace, trace_sq, size in ((3.0, 10.0, 7), (-1.0, 4.0, 50), (2.0, 0.5, 10)):
        b = ws_upper_bound(
            torch.tensor(trace, dtype=torch.float64), torch.tensor(trace_sq, dtype=torch.float64), size
        )
        assert float(b.upper) == pytest.approx(ws_bound_from_traces(trace, trace_sq, size).upper, rel=1e-12)


def test_refusals() -> None:
    model, x, y = _tiny()
    with pytest.raises(ValueError, match="beta"):
        hsr_penalty(model, x, y, -0.1)
    with pytest.raises(TypeError, match="three_layer"):
        hsr_penalty(MLP((3,), [3], 3, activation="tanh").double(), x, y, 1.0)


def test_config_checks_name_the_key_and_the_valid_values() -> None:
    check_regularizer("none", -5.0, "mlp", "relu")  # nothing to check without a regularizer
    check_regularizer("hsr", 0.0, "three_layer", "tanh")
    cases = [
        (("hsr", -1.0, "three_layer", "tanh"), "'regularizer.beta'", ">= 0"),
        (("hsr", math.nan, "three_layer", "tanh"), "'regularizer.beta'", ">= 0"),
        (("hsr", 0.1, "mlp", "tanh"), "'regularizer'", "model=three_layer"),
        (("hsr", 0.1, "three_layer", "relu"), "'model.activation'", "sigmoid, tanh, softplus"),
        (("l2", 0.1, "three_layer", "tanh"), "'regularizer'", "none, hsr"),
    ]
    for args, key, hint in cases:
        with pytest.raises(ConfigValueError) as info:
            check_regularizer(*args)
        message = str(info.value)
        assert key in message and hint in message and "\n" not in message


def test_smooth_activation_lists_agree() -> None:
    assert (
        SMOOTH_ACTIVATIONS == MODEL_SMOOTH == CLOSED_FORM_SMOOTH == tuple(a.value for a in s.SmoothActivation)
    )


def test_logits_are_the_models_forward_and_carry_the_data_gradient() -> None:
    model, x, y = _tiny("softplus", seed=4)
    term = hsr_penalty(model, x, y, 0.5)
    assert torch.equal(term.logits.detach(), model(x).detach())
    F.cross_entropy(term.logits, y).backward()
    shared = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    for a, p in zip(shared, model.parameters(), strict=True):
        torch.testing.assert_close(a, p.grad, rtol=1e-14, atol=1e-16)
