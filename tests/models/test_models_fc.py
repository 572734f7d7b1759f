"""mlp and three_layer: structure the reparam code relies on, names, forward/backward."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hessdyn.config import schema as s
from hessdyn.config.errors import HessdynError
from hessdyn.models import MLP, ThreeLayerNet, build_model


def _backward_all_finite(model: nn.Module, x: torch.Tensor, num_classes: int) -> None:
    y = torch.arange(x.shape[0]) % num_classes
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("activation", ["relu", "tanh", "gelu", "softplus", "sigmoid"])
def test_mlp_forward_backward(activation: str) -> None:
    torch.manual_seed(0)
    model = build_model(s.MLPConfig(widths=[7, 5], activation=s.Activation(activation)), (1, 8, 8), 10)
    out = model(torch.randn(6, 1, 8, 8))
    assert out.shape == (6, 10)
    _backward_all_finite(model, torch.randn(6, 1, 8, 8), 10)
    assert type(model.act0).__name__.lower() == activation


def test_mlp_children_are_flatten_linear_relu_in_order() -> None:
    model = build_model(s.MLPConfig(widths=[4, 3]), (20,), 3)
    kinds = [type(m) for m in model]
    assert kinds == [nn.Flatten, nn.Linear, nn.ReLU, nn.Linear, nn.ReLU, nn.Linear]
    assert [n for n, _ in model.named_parameters()] == [
        "hidden0.weight",
        "hidden0.bias",
        "hidden1.weight",
        "hidden1.bias",
        "output.weight",
        "output.bias",
    ]
    assert model.hidden0.weight.shape == (4, 20)
    assert model.output.weight.shape == (3, 3)


def test_mlp_dropout_only_when_positive_and_names_unchanged() -> None:
    plain = build_model(s.MLPConfig(widths=[4, 3], dropout=0.0), (20,), 3)
    dropped = build_model(s.MLPConfig(widths=[4, 3], dropout=0.25), (20,), 3)
    assert not any(isinstance(m, nn.Dropout) for m in plain)
    kinds = [type(m) for m in dropped]
    assert kinds == [nn.Flatten, nn.Linear, nn.ReLU, nn.Dropout, nn.Linear, nn.ReLU, nn.Dropout, nn.Linear]
    assert dropped.dropout0.p == 0.25
    assert [n for n, _ in plain.named_parameters()] == [n for n, _ in dropped.named_parameters()]


def test_mlp_without_bias_has_weights_only() -> None:
    model = build_model(s.MLPConfig(widths=[5], bias=False), (2, 3), 4)
    assert [n for n, _ in model.named_parameters()] == ["hidden0.weight", "output.weight"]
    assert model.hidden0.weight.shape == (5, 6)


def test_mlp_seeded_by_caller() -> None:
    torch.manual_seed(3)
    a = build_model(s.MLPConfig(widths=[5]), (4,), 2)
    torch.manual_seed(3)
    b = build_model(s.MLPConfig(widths=[5]), (4,), 2)
    for (_, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_mlp_accepts_plain_strings_from_omegaconf() -> None:
    class Cfg:
        name, widths, activation, bias, dropout = "mlp", [3], "tanh", True, 0.0

    model = build_model(Cfg(), (4,), 2)
    assert isinstance(model, MLP) and isinstance(model.act0, nn.Tanh)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "softplus"])
def test_three_layer_structure_and_grads(activation: str) -> None:
    torch.manual_seed(0)
    cfg = s.ThreeLayerConfig(hidden=9, activation=s.SmoothActivation(activation))
    model = build_model(cfg, (1, 8, 8), 10)
    assert isinstance(model, ThreeLayerNet)
    assert [type(m) for m in model][:2] == [nn.Flatten, nn.Linear] and isinstance(model[3], nn.Linear)
    assert [n for n, _ in model.named_parameters()] == [
        "hidden.weight",
        "hidden.bias",
        "output.weight",
        "output.bias",
    ]
    assert model.hidden.weight.shape == (9, 64) and model.output.weight.shape == (10, 9)
    x = torch.randn(5, 1, 8, 8)
    expected = model.output(model.act(model.hidden(x.flatten(1))))
    assert torch.equal(model(x), expected)
    _backward_all_finite(model, x, 10)


def test_three_layer_rejects_relu() -> None:
    with pytest.raises(ValueError, match="smooth activation"):
        ThreeLayerNet((4,), 3, 2, activation="relu")


def test_unknown_model_name_is_one_line_error() -> None:
    class Cfg:
        name = "transformer"

    with pytest.raises(
        HessdynError, match=r"unknown model 'transformer' \(choose from: mlp, three_layer, wide_resnet\)"
    ):
        build_model(Cfg(), (4,), 2)
