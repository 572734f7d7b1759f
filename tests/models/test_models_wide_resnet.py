"""wide_resnet: structure, shifted ReLU, 1-bit weights, temperature, forward/backward on tiny settings."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from hessdyn.config import schema as s
from hessdyn.config.errors import HessdynError
from hessdyn.models import (
    BinaryConv2d,
    BinaryLinear,
    PreActBlock,
    ShiftedReLU,
    WideResNet,
    binarize,
    build_model,
)


def _wrn(**kw) -> WideResNet:
    kw.setdefault("depth", 8)
    kw.setdefault("width", 1)
    torch.manual_seed(0)
    return build_model(s.WideResNetConfig(**kw), (3, 32, 32), 10)


def _batchnorms(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@pytest.mark.parametrize(
    ("norm", "binary", "dropout"),
    [
        ("batchnorm", False, 0.0),
        ("shifted_relu", False, 0.0),
        ("batchnorm", True, 0.2),
        ("shifted_relu", True, 0.0),
    ],
)
def test_forward_backward_all_params_finite_nonzero_grads(norm: str, binary: bool, dropout: float) -> None:
    model = _wrn(width=2, norm=s.Norm(norm), binary_weights=binary, dropout=dropout)
    x = torch.randn(4, 3, 32, 32)
    out = model(x)
    assert out.shape == (4, 10)
    nn.functional.cross_entropy(out, torch.tensor([0, 1, 2, 3])).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize(("depth", "width"), [(8, 1), (14, 2), (20, 1)])
def test_blocks_per_stage_and_widths(depth: int, width: int) -> None:
    model = _wrn(depth=depth, width=width)
    n = (depth - 2) // 6
    assert len(model.stages) == 3
    assert [len(stage) for stage in model.stages] == [n, n, n]
    assert all(isinstance(b, PreActBlock) for stage in model.stages for b in stage)
    assert model.stem.out_channels == 16
    assert [stage[-1].conv2.out_channels for stage in model.stages] == [16 * width, 32 * width, 64 * width]
    assert [stage[0].conv1.stride for stage in model.stages] == [(1, 1), (2, 2), (2, 2)]
    # 1x1 shortcut exactly where the shape changes: stage 0 only if width > 1, stages 1-2 always, never later blocks
    shortcuts = [
        (i, j) for i, stage in enumerate(model.stages) for j, b in enumerate(stage) if b.shortcut is not None
    ]
    assert shortcuts == ([(0, 0)] if width > 1 else []) + [(1, 0), (2, 0)]
    assert model.stages[1][0].shortcut.kernel_size == (1, 1)
    assert model.fc.in_features == 64 * width
    # "depth" counts the stem, the 6n 3x3 convs of the blocks and the fc layer (1x1 shortcuts excluded)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs) + 1 == depth


def test_parameter_names_are_readable() -> None:
    names = [n for n, _ in _wrn().named_parameters()]
    assert names[0] == "stem.weight"
    assert "stages.0.0.norm1.weight" in names and "stages.2.0.shortcut.weight" in names
    assert names[-4:] == ["final_norm.weight", "final_norm.bias", "fc.weight", "fc.bias"]
    shifted = [n for n, _ in _wrn(norm=s.Norm.shifted_relu).named_parameters()]
    assert shifted[:3] == ["input_norm.weight", "input_norm.bias", "stem.weight"]
    assert not any("norm1" in n or "norm2" in n or "final_norm" in n for n in shifted)


def test_shifted_relu_is_exactly_max_x_minus_one() -> None:
    x = torch.tensor([-3.0, -1.0, -0.999, -0.5, 0.0, 2.5, float("inf"), float("-inf")])
    assert torch.equal(
        ShiftedReLU()(x), torch.tensor([-1.0, -1.0, -0.999, -0.5, 0.0, 2.5, float("inf"), -1.0])
    )
    y = torch.randn(1000, dtype=torch.float64) * 3
    assert torch.equal(ShiftedReLU()(y), torch.maximum(y, torch.tensor(-1.0, dtype=torch.float64)))


def test_shifted_relu_has_one_batchnorm_on_the_input() -> None:
    model = _wrn(depth=14, width=2, norm=s.Norm.shifted_relu)
    assert _batchnorms(model) == ["input_norm"]
    assert model.input_norm.affine and model.input_norm.num_features == 3
    n_acts = sum(isinstance(m, ShiftedReLU) for m in model.modules())
    assert n_acts == 2 * 3 * 2 + 1  # two per block, 3 stages x 2 blocks, plus the final one
    assert not any(isinstance(m, nn.ReLU) for m in model.modules())
    # the input norm really is first: scaling the input by a constant leaves train-mode outputs unchanged
    x = torch.randn(8, 3, 32, 32)
    assert torch.allclose(model(x), model(5.0 * x + 2.0), atol=1e-4)


def test_batchnorm_variant_has_bn_before_every_relu_and_none_on_input() -> None:
    model = _wrn(depth=8, width=1)
    assert _batchnorms(model) == [
        "stages.0.0.norm1",
        "stages.0.0.norm2",
        "stages.1.0.norm1",
        "stages.1.0.norm2",
        "stages.2.0.norm1",
        "stages.2.0.norm2",
        "final_norm",
    ]
    assert isinstance(model.input_norm, nn.Identity)


def _binary_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, BinaryConv2d | BinaryLinear)]


def test_binary_weights_take_exactly_two_values_with_he_scale() -> None:
    model = _wrn(width=2, binary_weights=True)
    layers = _binary_layers(model)
    # stem + 2 convs per block (3 blocks) + 3 shortcuts + fc, all binarized (McDonnell binarizes first and last)
    assert len(layers) == 1 + 6 + 3 + 1
    assert not any(type(m) is nn.Conv2d or type(m) is nn.Linear for m in model.modules())
    for m in layers:
        if isinstance(m, BinaryConv2d):
            kh, kw = m.kernel_size
            expected = math.sqrt(2.0 / (kh * kw * m.in_channels))
        else:
            expected = math.sqrt(2.0 / m.in_features)
        assert m.scale == pytest.approx(expected, rel=1e-15)
        values = torch.unique(m.effective_weight().detach())
        assert torch.equal(values, torch.tensor([-expected, expected], dtype=values.dtype))
        assert torch.equal(torch.sign(m.effective_weight().detach()), torch.where(m.weight >= 0, 1.0, -1.0))
    assert model.stem.scale == pytest.approx(math.sqrt(2.0 / 27.0))
    assert model.fc.scale == pytest.approx(math.sqrt(2.0 / 128.0))


def test_binary_forward_equals_conv_with_signed_weights() -> None:
    model = _wrn(binary_weights=True).eval()
    reference = _wrn(binary_weights=False).eval()
    with torch.no_grad():
        for (_, p), (_, q) in zip(model.named_parameters(), reference.named_parameters(), strict=True):
            q.copy_(p)
        for m_bin, m_ref in zip(model.modules(), reference.modules(), strict=True):
            if isinstance(m_bin, BinaryConv2d | BinaryLinear):
                m_ref.weight.copy_(m_bin.scale * torch.where(m_bin.weight >= 0, 1.0, -1.0))
    x = torch.randn(3, 3, 32, 32)
    assert torch.allclose(model(x), reference(x), atol=1e-5)
    assert not torch.allclose(model(x), _wrn(binary_weights=False).eval()(x), atol=1e-3)


def test_straight_through_estimator_passes_the_gradient_unchanged() -> None:
    w = torch.tensor([0.3, -2.0, 0.0, 1e-8], requires_grad=True)
    out = binarize(w, 0.5)
    assert out.tolist() == [0.5, -0.5, 0.5, 0.5]
    upstream = torch.tensor([1.0, -2.0, 3.0, 4.0])
    (out * upstream).sum().backward()
    assert torch.equal(w.grad, upstream)
    # and through a whole binary net, the latent weights of every binarized layer get gradients
    model = _wrn(binary_weights=True)
    nn.functional.cross_entropy(model(torch.randn(2, 3, 32, 32)), torch.tensor([1, 7])).backward()
    for m in _binary_layers(model):
        assert m.weight.grad is not None and m.weight.grad.abs().sum() > 0


def test_straight_through_supports_double_backward_for_hvps() -> None:
    torch.manual_seed(1)
    w = torch.randn(3, 4, requires_grad=True)
    x = torch.randn(5, 4)
    loss = (x @ binarize(w, 0.7).T).pow(2).sum()
    (g,) = torch.autograd.grad(loss, w, create_graph=True)
    v = torch.randn_like(w)
    (hv,) = torch.autograd.grad((g * v).sum(), w)
    # loss = sum_n ||W_eff x_n||^2 -> Hessian wrt W (row-wise) is 2 X^T X, the same for the latent weights
    assert torch.allclose(hv, 2 * v @ (x.T @ x), atol=1e-4)


def test_temperature_divides_logits() -> None:
    x = torch.randn(3, 3, 32, 32)
    base = _wrn(temperature=1.0).eval()
    for temperature in (2.0, 3.0, 0.5):
        hot = _wrn(temperature=temperature).eval()
        hot.load_state_dict(base.state_dict())
        if temperature == 2.0:
            assert torch.equal(hot(x), base(x) / 2.0)  # division by a power of two is exact
        assert torch.allclose(hot(x) * temperature, base(x), rtol=1e-6, atol=1e-6)
        assert not torch.allclose(hot(x), base(x))


def test_dropout_sits_between_the_convs_of_each_block() -> None:
    model = _wrn(dropout=0.3)
    drops = [n for n, m in model.named_modules() if isinstance(m, nn.Dropout)]
    assert drops == ["stages.0.0.dropout", "stages.1.0.dropout", "stages.2.0.dropout"]
    assert all(m.p == 0.3 for m in model.modules() if isinstance(m, nn.Dropout))
    block = model.stages[0][0]
    seen: list[str] = []
    for name in ("conv1", "dropout", "conv2"):
        getattr(block, name).register_forward_hook(lambda *_, name=name: seen.append(name))
    block(torch.randn(1, 16, 8, 8))
    assert seen == ["conv1", "dropout", "conv2"]
    assert not any(isinstance(m, nn.Dropout) for m in _wrn().modules())


def test_he_fan_out_init_for_convs() -> None:
    torch.manual_seed(0)
    model = WideResNet(depth=8, width=4, num_classes=10)
    w = model.stages[2][0].conv2.weight  # 256 x 256 x 3 x 3
    expected_std = math.sqrt(2.0 / (w.shape[0] * 9))
    assert w.std().item() == pytest.approx(expected_std, rel=0.02)
    assert torch.equal(model.fc.bias, torch.zeros(10))


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 17, 23)])
def test_other_image_sizes_work_through_global_pooling(shape: tuple[int, int, int]) -> None:
    torch.manual_seed(0)
    model = build_model(s.WideResNetConfig(depth=8, width=1), shape, 7)
    assert model(torch.randn(2, *shape)).shape == (2, 7)
    assert model.stem.in_channels == shape[0]


def test_vector_inputs_are_a_clear_error() -> None:
    with pytest.raises(HessdynError, match=r"wide_resnet needs image inputs \(C, H, W\), got shape \(20,\)"):
        build_model(s.WideResNetConfig(depth=8, width=1), (20,), 4)


def test_eval_mode_is_deterministic_and_batch_independent() -> None:
    model = _wrn(width=1).eval()
    x = torch.randn(4, 3, 32, 32)
    assert torch.allclose(model(x)[:2], model(x[:2]), atol=1e-6)
