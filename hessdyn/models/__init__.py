"""Models: ``mlp``, ``three_layer`` and ``wide_resnet``, built from their config by :func:`build_model`.

Parameter names (``model.named_parameters()``) are stable and readable; see each module's docstring:
:mod:`hessdyn.models.mlp` (``hidden0.weight``, ..., ``output.weight``) and
:mod:`hessdyn.models.wide_resnet` (``stem.weight``, ``stages.0.0.conv1.weight``, ..., ``fc.weight``).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from hessdyn.config.errors import HessdynError
from hessdyn.models._choices import choice
from hessdyn.models.binary import BinaryConv2d, BinaryLinear, binarize
from hessdyn.models.mlp import MLP, ThreeLayerNet
from hessdyn.models.wide_resnet import PreActBlock, ShiftedReLU, WideResNet

__all__ = [
    "MLP",
    "BinaryConv2d",
    "BinaryLinear",
    "PreActBlock",
    "ShiftedReLU",
    "ThreeLayerNet",
    "WideResNet",
    "binarize",
    "build_model",
]

MODEL_NAMES: tuple[str, ...] = ("mlp", "three_layer", "wide_resnet")


def build_model(cfg: Any, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """The model described by ``cfg`` for inputs of shape ``input_shape`` (no batch dim), on the CPU in float32.

    ``cfg`` is an ``MLPConfig``, ``ThreeLayerConfig`` or ``WideResNetConfig`` (or any object with the
    same attributes). Initialization draws from the global torch RNG: seed it before calling.
    Raises :class:`HessdynError` when the model cannot take this data (e.g. ``wide_resnet`` on vectors).
    """
    name = choice(cfg.name)
    input_shape = tuple(int(d) for d in input_shape)
    if not input_shape or any(d <= 0 for d in input_shape):
        raise HessdynError(f"model {name}: input shape must be non-empty positive dims, got {input_shape}")
    if num_classes < 1:
        raise HessdynError(f"model {name}: num_classes must be >= 1, got {num_classes}")
    if name == "mlp":
        return MLP(
            input_shape,
            list(cfg.widths),
            num_classes,
            activation=choice(cfg.activation),
            bias=bool(cfg.bias),
            dropout=float(cfg.dropout),
        )
    if name == "three_layer":
        return ThreeLayerNet(
            input_shape, int(cfg.hidden), num_classes, activation=choice(cfg.activation), bias=bool(cfg.bias)
        )
    if name == "wide_resnet":
        if len(input_shape) != 3:
            raise HessdynError(
                f"model wide_resnet needs image inputs (C, H, W), got shape {input_shape}: "
                "use an image dataset (digits, mnist, cifar10, ...) or model=mlp"
            )
        return WideResNet(
            int(cfg.depth),
            int(cfg.width),
            num_classes,
            in_channels=input_shape[0],
            norm=choice(cfg.norm),
            binary_weights=bool(cfg.binary_weights),
            temperature=float(cfg.temperature),
            dropout=float(cfg.dropout),
        )
    raise HessdynError(f"unknown model '{name}' (choose from: {', '.join(MODEL_NAMES)})")
