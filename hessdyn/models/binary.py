"""1-bit weights with a straight-through estimator (McDonnell, ICLR 2018, eq. 1).

The forward pass uses ``scale * sign(w)`` with a fixed, unlearned per-layer ``scale`` equal to the
He-initialization standard deviation of the layer: ``sqrt(2 / fan_in)``, where ``fan_in`` is
``kernel_h * kernel_w * C_in`` for a convolution and ``in_features`` for a linear layer. The latent
real-valued weight ``w`` is the trainable parameter; its gradient is the gradient with respect to the
effective binary weight (identity straight-through estimator, no clipping, as in McDonnell's and
Zagoruyko's reference code). Since the estimator is the identity map plus a constant, second
derivatives with respect to the latent weights are the Hessian with respect to the effective weights,
evaluated at the binary point.

``sign(0)`` is taken as ``+1`` so every layer uses exactly the two values ``+scale`` and ``-scale``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def binarize(weight: Tensor, scale: float) -> Tensor:
    """``scale * sign(weight)`` in the forward pass, identity gradient in the backward pass.

    ``weight - weight.detach()`` is exactly zero, so the value is exactly ``+-scale``, while autograd
    (and ``torch.func`` transforms) see the identity map; no custom ``autograd.Function`` is needed.
    """
    signs = torch.where(weight >= 0, 1.0, -1.0).to(weight.dtype)
    return scale * signs + (weight - weight.detach())


class BinaryConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose forward pass uses :func:`binarize` of its weight (parameter names unchanged)."""

    @property
    def scale(self) -> float:
        kh, kw = self.kernel_size
        return math.sqrt(2.0 / (kh * kw * self.in_channels // self.groups))

    def effective_weight(self) -> Tensor:
        return binarize(self.weight, self.scale)

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(x, self.effective_weight(), self.bias)


class BinaryLinear(nn.Linear):
    """``nn.Linear`` whose forward pass uses :func:`binarize` of its weight; the bias stays real."""

    @property
    def scale(self) -> float:
        return math.sqrt(2.0 / self.in_features)

    def effective_weight(self) -> Tensor:
        return binarize(self.weight, self.scale)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.effective_weight(), self.bias)
