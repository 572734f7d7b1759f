"""Tiny float64 ReLU nets and data for the reparametrization tests."""

from __future__ import annotations

import pytest
import torch
from torch import nn


@pytest.fixture
def data() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(24, 3, generator=generator, dtype=torch.float64)
    y = torch.randint(0, 3, (24,), generator=generator)
    return x, y


@pytest.fixture
def two_layer() -> nn.Sequential:
    """Linear(3, 5) -> ReLU -> Linear(5, 3): P = 20 + 18 = 38."""
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 3)).double()


@pytest.fixture
def dense_hessian():
    """The exact ``(P, P)`` Hessian of the mean cross-entropy of ``model`` on ``(x, y)``, via
    ``torch.autograd.functional.hessian`` (independent of hessdyn's operators)."""

    def compute(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        names = [name for name, _ in model.named_parameters()]
        shapes = [p.shape for _, p in model.named_parameters()]
        theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

        def loss(flat: torch.Tensor) -> torch.Tensor:
            params, offset = {}, 0
            for name, shape in zip(names, shapes, strict=True):
                params[name] = flat[offset : offset + shape.numel()].view(shape)
                offset += shape.numel()
            return nn.functional.cross_entropy(torch.func.functional_call(model, params, (x,)), y)

        return torch.autograd.functional.hessian(loss, theta)

    return compute
