"""Wide residual network WRN-depth-k (Zagoruyko & Komodakis 2016), pre-activation, for 32x32 images.

Layout (``n = (depth - 2) / 6`` blocks per stage, widths ``16k, 32k, 64k``, strides ``1, 2, 2``)::

    input_norm (shifted_relu only) -> stem (conv3x3, 16) -> stages.0 -> stages.1 -> stages.2
    -> final_norm -> final_act -> global average pool -> fc -> / temperature

Parameter names: ``stem.weight``, ``stages.<s>.<b>.{norm1,conv1,norm2,conv2,shortcut}.weight`` (norms
also ``.bias``), ``final_norm.{weight,bias}``, ``fc.{weight,bias}``; with ``norm="shifted_relu"`` the
block/final norms are parameter-free ``Identity`` and ``input_norm.{weight,bias}`` appears instead.

* ``norm="batchnorm"``: every pre-activation is ``BatchNorm2d`` (affine) + ``ReLU``.
* ``norm="shifted_relu"`` (McDonnell, Mostafa, Wang & van Schaik 2019): every BN+ReLU becomes
  ``max(x, -1)``; a single affine ``BatchNorm2d`` normalizes the input before the stem, as in their
  reference code.
* A block whose shape changes (first block of a stage when the width or stride differs) has a 1x1 conv
  ``shortcut`` applied to the block's pre-activated input, as in the reference implementation.
* ``dropout > 0`` inserts ``Dropout`` between the two convolutions of every block.
* ``binary_weights=True``: every convolution (stem, blocks, shortcuts) and the final linear layer use
  1-bit weights ``sqrt(2 / fan_in) * sign(w)`` with a straight-through estimator
  (:mod:`hessdyn.models.binary`). McDonnell's reference code binarizes the first and the last layer
  too (Zagoruyko's re-implementation keeps them real); we follow McDonnell. Biases and BatchNorm
  parameters stay real-valued.
* ``temperature`` divides the logits, ``fc(h) / T`` (bias included): ``T > 1`` softens the softmax.
  McDonnell et al. use it to tame the output scale of the BN-free (shifted ReLU) nets.

Initialization: He normal with ``mode="fan_out"`` for convolutions (the reference implementation),
He normal (fan_in) weights and zero bias for ``fc``, BatchNorm weight 1 and bias 0.

32x32 is the design size (two stride-2 stages give 8x8 feature maps); other sizes work because of the
global average pool, which is a mean over the spatial axes rather than ``AdaptiveAvgPool2d`` so that it
stays deterministic on CUDA (``torch.use_deterministic_algorithms``).
"""

from __future__ import annotations

from torch import Tensor, nn

from hessdyn.models.binary import BinaryConv2d, BinaryLinear


class ShiftedReLU(nn.Module):
    """``max(x, -1)``: a ReLU shifted to pass values down to -1 (replaces BN+ReLU)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.clamp(min=-1.0)


def _conv(c_in: int, c_out: int, kernel: int, stride: int, binary: bool) -> nn.Conv2d:
    cls = BinaryConv2d if binary else nn.Conv2d
    return cls(c_in, c_out, kernel_size=kernel, stride=stride, padding=kernel // 2, bias=False)


def _norm(channels: int, norm: str) -> nn.Module:
    return nn.BatchNorm2d(channels) if norm == "batchnorm" else nn.Identity()


def _act(norm: str) -> nn.Module:
    return nn.ReLU() if norm == "batchnorm" else ShiftedReLU()


class PreActBlock(nn.Module):
    """Pre-activation basic block: ``x + conv2(drop(act(norm2(conv1(act(norm1(x)))))))``."""

    def __init__(self, c_in: int, c_out: int, stride: int, norm: str, dropout: float, binary: bool) -> None:
        super().__init__()
        self.norm1 = _norm(c_in, norm)
        self.act1 = _act(norm)
        self.conv1 = _conv(c_in, c_out, 3, stride, binary)
        self.norm2 = _norm(c_out, norm)
        self.act2 = _act(norm)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = _conv(c_out, c_out, 3, 1, binary)
        self.shortcut = _conv(c_in, c_out, 1, stride, binary) if (c_in != c_out or stride != 1) else None

    def forward(self, x: Tensor) -> Tensor:
        o = self.act1(self.norm1(x))
        y = self.conv1(o)
        y = self.conv2(self.dropout(self.act2(self.norm2(y))))
        return y + (self.shortcut(o) if self.shortcut is not None else x)


class WideResNet(nn.Module):
    """WRN-``depth``-``width`` classifier: ``(N, C, H, W) -> (N, num_classes)`` logits (see module doc)."""

    def __init__(
        self,
        depth: int,
        width: int,
        num_classes: int,
        in_channels: int = 3,
        norm: str = "batchnorm",
        binary_weights: bool = False,
        temperature: float = 1.0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6 != 0:
            raise ValueError(f"depth must be 6n+2 with n >= 1, got {depth}")
        if norm not in ("batchnorm", "shifted_relu"):
            raise ValueError(f"norm must be 'batchnorm' or 'shifted_relu', got {norm!r}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.depth, self.width, self.norm = depth, width, norm
        self.binary_weights, self.temperature = binary_weights, float(temperature)
        self.blocks_per_stage = (depth - 2) // 6
        self.stage_widths = (16 * width, 32 * width, 64 * width)

        self.input_norm = nn.BatchNorm2d(in_channels) if norm == "shifted_relu" else nn.Identity()
        self.stem = _conv(in_channels, 16, 3, 1, binary_weights)
        stages, c_in = [], 16
        for c_out, stride in zip(self.stage_widths, (1, 2, 2), strict=True):
            blocks = []
            for b in range(self.blocks_per_stage):
                blocks.append(
                    PreActBlock(c_in, c_out, stride if b == 0 else 1, norm, dropout, binary_weights)
                )
                c_in = c_out
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.final_norm = _norm(c_in, norm)
        self.final_act = _act(norm)
        self.fc = (BinaryLinear if binary_weights else nn.Linear)(c_in, num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def features(self, x: Tensor) -> Tensor:
        """Pooled features ``(N, 64 * width)`` before the classifier."""
        h = self.stages(self.stem(self.input_norm(x)))
        return self.final_act(self.final_norm(h)).mean(dim=(2, 3))

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x)) / self.temperature

    def extra_repr(self) -> str:
        return (
            f"depth={self.depth}, width={self.width}, norm={self.norm}, "
            f"binary_weights={self.binary_weights}, temperature={self.temperature}"
        )
