"""Models and odd-sized Hessian sets shared by the distributed tests and their worker processes.

Both are built from fixed seeds, so the pytest process (single-process reference) and every rank build
bit-identical copies without exchanging anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from hessdyn.curvature import HessianMode, HessianSet, select_hessian_set
from hessdyn.models import MLP


@dataclass(frozen=True)
class DistCase:
    name: str
    build: Callable[[], nn.Module]
    data: Callable[[], HessianSet]
    mode: HessianMode
    k: int


def _mlp() -> nn.Module:
    torch.manual_seed(11)
    return MLP((6,), [9, 7], 4, activation="tanh").double()


def _mlp_data() -> HessianSet:
    gen = torch.Generator().manual_seed(12)
    x = torch.randn(37, 6, generator=gen, dtype=torch.float64)  # 37: shards of 19 and 18
    y = torch.randint(0, 4, (37,), generator=gen)
    return select_hessian_set(x, y, None)


class _ConvBN(nn.Module):
    """conv3x3(3→4)-BN-ReLU-conv3x3/2(4→6)-BN-ReLU-mean pool-linear(6→3): P = 365."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1, bias=False),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            nn.Conv2d(4, 6, 3, stride=2, padding=1),
            nn.BatchNorm2d(6),
            nn.ReLU(),
        )
        self.fc = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean(dim=(2, 3)))


def _conv() -> nn.Module:
    """A small batch-norm conv net with running statistics moved off their defaults."""
    torch.manual_seed(13)
    model = _ConvBN().double()
    gen = torch.Generator().manual_seed(14)
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(16, 3, 8, 8, generator=gen, dtype=torch.float64) * 1.5 + 0.3)
    return model  # left in train mode: the Hessian mode, not the module flag, decides


def _conv_data() -> HessianSet:
    gen = torch.Generator().manual_seed(15)
    x = torch.randn(21, 3, 8, 8, generator=gen, dtype=torch.float64)  # 21: shards of 11 and 10
    y = torch.randint(0, 3, (21,), generator=gen)
    return select_hessian_set(x, y, None)


MLP_CASE = DistCase("mlp", _mlp, _mlp_data, HessianMode(weight_decay=1e-2), k=4)
CONV_CASE = DistCase("conv_bn_eval", _conv, _conv_data, HessianMode(batchnorm="eval"), k=4)
CASES = {c.name: c for c in (MLP_CASE, CONV_CASE)}
