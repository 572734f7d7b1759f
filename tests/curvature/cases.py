"""Tiny models and data shared by the curvature tests, with an independent reference Hessian.

The reference deliberately avoids hessdyn code: it flattens parameters by hand and differentiates with
torch.autograd.functional.hessian / jacobian on a separately prepared copy of the model.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

N, D_IN, C = 24, 5, 3
IMAGE = (1, 5, 5)


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[], nn.Module]
    has_bn: bool = False


def _mlp(act: type[nn.Module]) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        torch.manual_seed(1)
        return nn.Sequential(nn.Linear(D_IN, 6), act(), nn.Linear(6, 6), act(), nn.Linear(6, C)).double()

    return build


def _bn_net() -> nn.Module:
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(D_IN, 6), nn.BatchNorm1d(6), nn.Tanh(), nn.Linear(6, C)).double()
    # Move running statistics away from their defaults so "eval" and "train" differ visibly.
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(16, D_IN, dtype=torch.float64) * 2 + 1)
    return model  # left in train mode on purpose: the operator must not care


def _conv_bn_net() -> nn.Module:
    """Conv → BatchNorm2d → ReLU → Linear on (N, 1, 5, 5) images, with moved running statistics."""
    torch.manual_seed(5)
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 3 * 3, C)
    ).double()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(16, *IMAGE, dtype=torch.float64) * 2 + 1)
    return model


def _dropout_net() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(
        nn.Linear(D_IN, 6), nn.Tanh(), nn.Dropout(0.5), nn.Linear(6, C)
    ).double()  # train mode


def _linear() -> nn.Module:
    torch.manual_seed(4)
    return nn.Linear(D_IN, C).double()


MLPS = [Case("tanh", _mlp(nn.Tanh)), Case("relu", _mlp(nn.ReLU)), Case("softplus", _mlp(nn.Softplus))]
BN = Case("batchnorm", _bn_net, has_bn=True)
CONV_BN = Case("conv_batchnorm", _conv_bn_net, has_bn=True)
DROPOUT = Case("dropout", _dropout_net)
LINEAR = Case("linear", _linear)
ALL = [*MLPS, BN, DROPOUT, LINEAR]


def data(seed: int = 0, n: int = N) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, D_IN, generator=gen, dtype=torch.float64), torch.randint(0, C, (n,), generator=gen)


def image_data(seed: int = 0, n: int = N) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, *IMAGE, generator=gen, dtype=torch.float64), torch.randint(
        0, C, (n,), generator=gen
    )


def _reference_module(model: nn.Module, batchnorm: str) -> nn.Module:
    ref = copy.deepcopy(model).eval()
    if batchnorm == "train":
        for m in ref.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.train()
    return ref


def flat_function(model: nn.Module, x: torch.Tensor, names: list[str] | None = None, batchnorm: str = "eval"):
    """theta -> logits for the parameters `names` (default all), others fixed; and theta at the model."""
    ref = _reference_module(model, batchnorm)
    named = dict(ref.named_parameters())
    names = names if names is not None else list(named)
    shapes = [named[n].shape for n in names]
    theta0 = torch.cat([named[n].detach().reshape(-1) for n in names])

    def logits(theta: torch.Tensor) -> torch.Tensor:
        parts, off = {}, 0
        for n, s in zip(names, shapes, strict=True):
            parts[n] = theta[off : off + s.numel()].reshape(s)
            off += s.numel()
        return functional_call(ref, parts, (x,))

    return logits, theta0


def reference_hessian(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    names: list[str] | None = None,
    batchnorm: str = "eval",
    loss_fn=F.cross_entropy,
) -> torch.Tensor:
    logits, theta0 = flat_function(model, x, names, batchnorm)
    return torch.autograd.functional.hessian(lambda t: loss_fn(logits(t), y), theta0)


def reference_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    logits, theta0 = flat_function(model, x)
    return torch.autograd.functional.jacobian(lambda t: F.cross_entropy(logits(t), y), theta0)


def reference_ggn(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(1/N) Σ_n J_nᵀ (diag(p_n) − p_n p_nᵀ) J_n with J the Jacobian of the logits."""
    logits, theta0 = flat_function(model, x)
    J = torch.autograd.functional.jacobian(logits, theta0)  # (N, C, P)
    p = torch.softmax(logits(theta0), dim=1).detach()
    HL = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
    return torch.einsum("ncp,ncd,ndq->pq", J, HL, J) / x.shape[0]


def snapshot(model: nn.Module) -> dict:
    """Everything about a module a curvature call must leave alone."""
    return {
        "state": {k: v.clone() for k, v in model.state_dict().items()},
        "training": [m.training for m in model.modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "grads": [p.grad for p in model.parameters()],
        "dtypes": [p.dtype for p in model.parameters()],
    }


def assert_unchanged(model: nn.Module, before: dict) -> None:
    after = snapshot(model)
    assert before["state"].keys() == after["state"].keys()
    for k in before["state"]:
        assert torch.equal(before["state"][k], after["state"][k]), f"state {k} changed"
    assert before["training"] == after["training"]
    assert before["requires_grad"] == after["requires_grad"]
    assert all(g is None for g in after["grads"]), "a .grad was written on the caller's parameters"
    assert before["dtypes"] == after["dtypes"]


def spectrum_matrix(eigenvalues: torch.Tensor, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A symmetric matrix with the given eigenvalues and a random orthonormal eigenbasis (columns)."""
    gen = torch.Generator().manual_seed(seed)
    n = eigenvalues.shape[0]
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    return (Q * eigenvalues) @ Q.T, Q


def reference_per_example_gradients(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn=F.cross_entropy
) -> torch.Tensor:
    """(N, P) gradients of each example's own loss, the Jacobian of the vector of per-example losses."""
    logits, theta0 = flat_function(model, x)
    return torch.autograd.functional.jacobian(
        lambda t: torch.stack([loss_fn(logits(t)[n : n + 1], y[n : n + 1]) for n in range(x.shape[0])]),
        theta0,
    )
