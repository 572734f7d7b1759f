"""Fully connected nets: the ``mlp`` and the smooth one-hidden-layer ``three_layer`` net.

Both are ``nn.Sequential`` subclasses whose children are exactly ``Flatten``, ``Linear``, activation
modules and (``mlp`` only, when ``dropout > 0``) ``Dropout``, in forward order, so code that walks the
layers (the Dinh et al. alpha-rescaling in ``hessdyn.reparam``) can iterate the model itself. Children
have names instead of indices, so parameter names say what they are and do not shift when dropout is
switched on:

* ``mlp``: ``flatten, hidden0, act0[, dropout0], hidden1, act1[, dropout1], ..., output`` -> parameters
  ``hidden0.weight, hidden0.bias, ..., output.weight, output.bias`` (no ``.bias`` when ``bias=False``).
* ``three_layer``: ``flatten, hidden, act, output`` -> ``hidden.weight, hidden.bias, output.weight,
  output.bias``.

Initialization is PyTorch's default for ``nn.Linear``; the caller seeds it (``torch.manual_seed``).
"""

from __future__ import annotations

import math
from collections import OrderedDict

from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "softplus": nn.Softplus,
    "sigmoid": nn.Sigmoid,
}
SMOOTH_ACTIVATIONS: tuple[str, ...] = ("sigmoid", "tanh", "softplus")


def make_activation(name: str) -> nn.Module:
    """A fresh activation module by name (one of :data:`ACTIVATIONS`)."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r} (choose from {sorted(ACTIVATIONS)})") from None


class MLP(nn.Sequential):
    """``(N, *input_shape) -> flatten -> [Linear -> act (-> Dropout)] per width -> Linear -> (N, classes)``.

    Dropout, when ``dropout > 0``, follows each hidden activation (never the output layer).
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        widths: list[int] | tuple[int, ...],
        num_classes: int,
        activation: str = "relu",
        bias: bool = True,
        dropout: float = 0.0,
    ) -> None:
        layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
        fan_in = math.prod(input_shape)
        for i, width in enumerate(widths):
            layers[f"hidden{i}"] = nn.Linear(fan_in, int(width), bias=bias)
            layers[f"act{i}"] = make_activation(activation)
            if dropout > 0:
                layers[f"dropout{i}"] = nn.Dropout(dropout)
            fan_in = int(width)
        layers["output"] = nn.Linear(fan_in, num_classes, bias=bias)
        super().__init__(layers)
        self.activation = activation


class ThreeLayerNet(nn.Sequential):
    """``input -> hidden -> output`` with a smooth activation: two weight matrices, one hidden layer.

    "3-layer" counts the layers of *units* (input, hidden, output), the convention of the
    Wolkowicz–Styan Hessian-bound and HSR-regularizer studies; in weight-layer terms it is a
    2-layer net. Children: ``flatten, hidden, act, output``.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        hidden: int,
        num_classes: int,
        activation: str = "sigmoid",
        bias: bool = True,
    ) -> None:
        if activation not in SMOOTH_ACTIVATIONS:
            raise ValueError(
                f"three_layer needs a smooth activation {SMOOTH_ACTIVATIONS}, got {activation!r}"
            )
        super().__init__(
            OrderedDict(
                flatten=nn.Flatten(),
                hidden=nn.Linear(math.prod(input_shape), hidden, bias=bias),
                act=make_activation(activation),
                output=nn.Linear(hidden, num_classes, bias=bias),
            )
        )
        self.activation = activation
