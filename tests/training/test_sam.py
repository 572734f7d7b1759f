"""SAM / ASAM: one step against the hand-computed update on a quadratic, bases, bit-for-bit resumption."""

from __future__ import annotations

import io

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hessdyn.config import schema as s
from hessdyn.config.errors import ConfigValueError
from hessdyn.config.flat_minima import check_sam
from hessdyn.training.sam import SAM, build_sam

A = torch.tensor([[3.0, 1.0, 0.0], [1.0, 2.0, 0.5], [0.0, 0.5, 1.0]], dtype=torch.float64)
C = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)


class Quadratic(nn.Module):
    """L(w) = ½ (u − c)ᵀ A (u − c) + ½ ||v||², u = w1 (3,), v = w2 (2,): two tensors, one global norm."""

    def __init__(self) -> None:
        super().__init__()
        self.w1 = nn.Parameter(torch.tensor([1.0, -2.0, 0.3], dtype=torch.float64))
        self.w2 = nn.Parameter(torch.tensor([0.7, -0.1], dtype=torch.float64))

    def loss(self) -> torch.Tensor:
        d = self.w1 - C
        return 0.5 * d @ A @ d + 0.5 * self.w2 @ self.w2


def grad_at(w1: torch.Tensor, w2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return A @ (w1 - C), w2.clone()


def hand_sam_gradient(w1, w2, rho: float, adaptive: bool, eta: float):
    """∇L(w + ε) with ε = ρ g/||g|| (SAM) or ρ T²g/||T g||, T = |w| + η (ASAM), by hand."""
    g1, g2 = grad_at(w1, w2)
    t1, t2 = (
        (w1.abs() + eta, w2.abs() + eta)
        if adaptive
        else (torch.ones(3, dtype=torch.float64), torch.ones(2, dtype=torch.float64))
    )
    norm = torch.sqrt(((t1 * g1) ** 2).sum() + ((t2 * g2) ** 2).sum())
    e1, e2 = rho * t1 * t1 * g1 / norm, rho * t2 * t2 * g2 / norm
    return grad_at(w1 + e1, w2 + e2)


def closure_for(model: Quadratic):
    def closure() -> torch.Tensor:
        loss = model.loss()
        loss.backward()
        return loss

    return closure


@pytest.mark.parametrize("adaptive", [False, True])
def test_one_sgd_step_equals_the_hand_computed_update(adaptive: bool) -> None:
    model = Quadratic()
    w1, w2 = model.w1.detach().clone(), model.w2.detach().clone()
    opt = SAM(torch.optim.SGD(model.parameters(), lr=0.1), rho=0.3, adaptive=adaptive, eta=0.01)
    loss = opt.step(closure_for(model))
    g1, g2 = hand_sam_gradient(w1, w2, 0.3, adaptive, 0.01)
    torch.testing.assert_close(model.w1.detach(), w1 - 0.1 * g1, rtol=1e-14, atol=1e-15)
    torch.testing.assert_close(model.w2.detach(), w2 - 0.1 * g2, rtol=1e-14, atol=1e-15)
    d = w1 - C
    assert float(loss.detach()) == pytest.approx(
        float(0.5 * d @ A @ d + 0.5 * w2 @ w2), rel=1e-15
    )  # the loss at w
    # the perturbation is not a plain gradient step: plain SGD lands elsewhere
    plain = w1 - 0.1 * grad_at(w1, w2)[0]
    assert (model.w1.detach() - plain).abs().max() > 1e-3


@pytest.mark.parametrize("base", ["momentum", "adam"])
def test_bases_receive_the_gradient_at_the_perturbed_point(base: str) -> None:
    """Three steps of SAM(base) equal three steps of the same base fed ∇L(w + ε) computed by hand."""
    model, twin = Quadratic(), Quadratic()

    def make(params):
        if base == "momentum":
            return torch.optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=0.01)
        return torch.optim.Adam(params, lr=0.05, betas=(0.8, 0.9), weight_decay=0.01)

    opt = SAM(make(model.parameters()), rho=0.2, adaptive=True, eta=0.05)
    ref = make(twin.parameters())
    for _ in range(3):
        opt.step(closure_for(model))
        g1, g2 = hand_sam_gradient(twin.w1.detach(), twin.w2.detach(), 0.2, True, 0.05)
        twin.w1.grad, twin.w2.grad = g1, g2
        ref.step()
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-13, atol=1e-15)


def test_learning_rate_set_on_sam_reaches_the_base_and_zero_gradient_is_a_no_op() -> None:
    model = Quadratic()
    opt = SAM(torch.optim.SGD(model.parameters(), lr=0.1), rho=0.1)
    opt.param_groups[0]["lr"] = 0.0
    before = [p.detach().clone() for p in model.parameters()]
    opt.step(closure_for(model))
    assert all(torch.equal(a, p.detach()) for a, p in zip(before, model.parameters(), strict=True))
    with torch.no_grad():  # a stationary point: g = 0 must give ε = 0, not NaN
        model.w1.copy_(C)
        model.w2.zero_()
    opt.param_groups[0]["lr"] = 0.1
    opt.step(closure_for(model))
    assert torch.equal(model.w1.detach(), C) and torch.equal(
        model.w2.detach(), torch.zeros(2, dtype=torch.float64)
    )


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3))


def _batches(n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(1)
    return [(torch.randn(8, 4, generator=gen), torch.randint(0, 3, (8,), generator=gen)) for _ in range(n)]


def _run(model: nn.Module, opt: SAM, batches) -> None:
    for x, y in batches:

        def closure(x=x, y=y) -> torch.Tensor:
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            return loss

        opt.step(closure)


@pytest.mark.parametrize(
    ("base_cfg", "adaptive"),
    [
        (s.MomentumConfig(lr=0.1, weight_decay=1e-3), False),
        (s.AdamConfig(lr=0.01), True),
        (s.SGDConfig(lr=0.2), True),
    ],
)
def test_resume_from_saved_state_is_bit_for_bit(base_cfg: s.OptimizerConfig, adaptive: bool) -> None:
    batches = _batches(9)
    straight = _net()
    _run(straight, build_sam(base_cfg, straight.parameters(), rho=0.1, adaptive=adaptive), batches)

    first = _net()
    opt = build_sam(base_cfg, first.parameters(), rho=0.1, adaptive=adaptive)
    _run(first, opt, batches[:4])
    buffer = io.BytesIO()
    torch.save({"model": first.state_dict(), "optimizer": opt.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    resumed = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3))  # fresh objects, other init
    resumed.load_state_dict(saved["model"])
    opt2 = build_sam(base_cfg, resumed.parameters(), rho=0.1, adaptive=adaptive)
    opt2.load_state_dict(saved["optimizer"])
    _run(resumed, opt2, batches[4:])
    for a, b in zip(straight.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)


def test_refusals() -> None:
    model = Quadratic()
    base = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="rho"):
        SAM(base, rho=0.0)
    with pytest.raises(ValueError, match="eta"):
        SAM(base, rho=0.1, adaptive=True, eta=-1.0)
    opt = SAM(base, rho=0.1)
    with pytest.raises(RuntimeError, match="closure"):
        opt.step()
    with pytest.raises(ValueError, match="rho, adaptive, eta"):
        opt.load_state_dict(SAM(torch.optim.SGD(Quadratic().parameters(), lr=0.1), rho=0.2).state_dict())
    with pytest.raises(ValueError, match="not a SAM optimizer state"):
        opt.load_state_dict(base.state_dict())
    with pytest.raises(ValueError, match="base optimizer"):
        build_sam(s.AdamWConfig(), model.parameters(), rho=0.1)


def test_config_checks_name_the_key_and_the_valid_values() -> None:
    check_sam(0.05, "adam", 0.01)
    for args, key, hint in (
        ((0.0, "sgd"), "'optimizer.rho'", "> 0"),
        ((-1.0, "sgd"), "'optimizer.rho'", "> 0"),
        ((0.1, "rmsprop"), "'optimizer.base'", "sgd, momentum, adam"),
        ((0.1, "sgd", -0.5), "'optimizer.eta'", ">= 0"),
    ):
        with pytest.raises(ConfigValueError) as info:
            check_sam(*args)
        assert key in str(info.value) and hint in str(info.value)
