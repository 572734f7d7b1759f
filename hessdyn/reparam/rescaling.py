"""Dinh et al. (2017) α-rescaling of positively homogeneous (ReLU) MLPs.

For ``f(x) = W_L φ(… φ(W_1 x + b_1) …) + b_L`` with ``φ(c z) = c φ(z)`` for ``c > 0``, the map
``W_l → α_l W_l``, ``b_l → (Π_{m≤l} α_m) b_l`` with ``α_l > 0`` and ``Π_l α_l = 1`` leaves ``f`` unchanged:
each hidden pre-activation is multiplied by ``Π_{m≤l} α_m`` and the output by ``Π_l α_l = 1``.

In flat parameters this is ``θ' = T θ`` with a positive diagonal ``T`` (``parameter_scale``). The loss is
the same function, so ``∇²L'(θ') = T⁻¹ ∇²L(θ) T⁻¹``: the Hessian block of ``W_l`` scales by ``α_l⁻²``, the
cross block ``(W_l, W_m)`` by ``(α_l α_m)⁻¹``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from hessdyn.curvature.operator import CurvatureOperator, DiagonalConjugate

# φ(c z) = c φ(z) for c > 0: the function commutes with positive scalings
_HOMOGENEOUS = (nn.ReLU, nn.LeakyReLU, nn.Identity, nn.Dropout, nn.Flatten)
_KNOWN_NON_HOMOGENEOUS = (
    nn.Tanh,
    nn.Sigmoid,
    nn.GELU,
    nn.Softplus,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.SiLU,
    nn.Mish,
    nn.Hardtanh,
    nn.Softsign,
    nn.LogSigmoid,
    nn.Hardswish,
    nn.Hardsigmoid,
)


def rescalable_layers(model: nn.Module) -> list[tuple[str, nn.Linear]]:
    """The ``nn.Linear`` layers of a (possibly nested) ``nn.Sequential``, in forward order, with their names.

    Raises ``ValueError`` naming the offending module if the model is not a Sequential of ``Flatten``,
    ``Linear``, ``ReLU``, ``LeakyReLU``, ``Identity`` and ``Dropout`` modules, i.e. if α-rescaling could
    change the function (a non-homogeneous activation such as tanh, sigmoid, GELU or softplus).
    """
    if not isinstance(model, nn.Sequential):
        raise ValueError(f"α-rescaling needs an nn.Sequential model, got {type(model).__name__}")
    layers = [(name, module) for name, module in _leaves(model, prefix="") if isinstance(module, nn.Linear)]
    if not layers:
        raise ValueError("model has no nn.Linear layer to rescale")
    return layers


@dataclass(frozen=True)
class AlphaRescaling:
    """A rescaled deep copy of a model; the input model is untouched.

    ``parameter_scale`` is the diagonal of ``T`` (``θ' = T θ``), shape ``(P,)`` over the trainable parameters
    in ``named_parameters()`` order: ``α_l`` on ``W_l``, ``Π_{m≤l} α_m`` on ``b_l``.
    """

    model: nn.Module
    scalings: tuple[float, ...]  # α_l per Linear layer, forward order
    parameter_scale: torch.Tensor  # (P,)


def alpha_rescale(model: nn.Module, scalings: Sequence[float]) -> AlphaRescaling:
    """Apply ``W_l → α_l W_l``, ``b_l → (Π_{m≤l} α_m) b_l`` to a deep copy of ``model``.

    Requires one ``α_l > 0`` per ``nn.Linear`` layer and ``Π α_l = 1`` (relative tolerance 1e-9).
    """
    layers = rescalable_layers(model)
    alphas = tuple(float(a) for a in scalings)
    if len(alphas) != len(layers):
        raise ValueError(f"{len(alphas)} scalings for {len(layers)} Linear layers ({[n for n, _ in layers]})")
    if not all(a > 0 and math.isfinite(a) for a in alphas):
        raise ValueError(f"scalings must be positive and finite, got {alphas}")
    if not math.isclose(math.prod(alphas), 1.0, rel_tol=1e-9):
        raise ValueError(
            f"scalings must multiply to 1 to preserve the function, got product {math.prod(alphas)}"
        )

    rescaled = copy.deepcopy(model)
    factors: dict[str, float] = {}
    cumulative = 1.0
    with torch.no_grad():
        for (name, _), (_, layer), alpha in zip(layers, rescalable_layers(rescaled), alphas, strict=True):
            cumulative *= alpha
            layer.weight.mul_(alpha)
            factors[_join(name, "weight")] = alpha
            if layer.bias is not None:
                layer.bias.mul_(cumulative)
                factors[_join(name, "bias")] = cumulative
    scale = torch.cat(
        [
            torch.full((p.numel(),), factors.get(name, 1.0), dtype=p.dtype, device=p.device)
            for name, p in rescaled.named_parameters()
            if p.requires_grad
        ]
    )
    return AlphaRescaling(model=rescaled, scalings=alphas, parameter_scale=scale)


@dataclass(frozen=True)
class AlphaScaling:
    """One point of an α grid: the first layer scaled by ``alpha``, the last by ``1/alpha``."""

    alpha: float
    scalings: tuple[float, ...]


def alpha_grid(num_layers: int, alphas: Sequence[float]) -> tuple[AlphaScaling, ...]:
    """Scalings ``(α, 1, …, 1, 1/α)`` for each ``α`` (``num_layers >= 2`` Linear layers)."""
    if num_layers < 2:
        raise ValueError(f"a function-preserving rescaling needs at least 2 Linear layers, got {num_layers}")
    grid = []
    for alpha in alphas:
        if not alpha > 0:
            raise ValueError(f"α must be positive, got {alpha}")
        grid.append(AlphaScaling(float(alpha), (float(alpha),) + (1.0,) * (num_layers - 2) + (1.0 / alpha,)))
    return tuple(grid)


def max_output_difference(model_a: nn.Module, model_b: nn.Module, inputs: torch.Tensor) -> float:
    """``max |f_a(x) − f_b(x)|`` over all inputs and outputs, both evaluated in eval mode on deep copies
    (dropout off; the callers' modules keep their mode)."""
    with torch.no_grad():
        output_a = copy.deepcopy(model_a).eval()(inputs)
        output_b = copy.deepcopy(model_b).eval()(inputs)
    return float((output_a - output_b).abs().max())


def predicted_rescaled_hessian(hessian: torch.Tensor, parameter_scale: torch.Tensor) -> torch.Tensor:
    """``T⁻¹ H T⁻¹``: the dense ``(P, P)`` Hessian of the rescaled model predicted from the original's."""
    inverse = 1.0 / parameter_scale.to(hessian)
    return inverse[:, None] * hessian * inverse[None, :]


def predicted_rescaled_operator(
    operator: CurvatureOperator, parameter_scale: torch.Tensor
) -> DiagonalConjugate:
    """``T⁻¹ H T⁻¹`` as an operator: its top eigenvalue is the rescaled model's ``λ_max``."""
    return DiagonalConjugate(operator, 1.0 / parameter_scale)


def _leaves(module: nn.Sequential, prefix: str) -> Iterator[tuple[str, nn.Module]]:
    for name, child in module.named_children():
        qualified = _join(prefix, name)
        if isinstance(child, nn.Sequential):
            yield from _leaves(child, qualified)
        elif isinstance(child, nn.Linear) or isinstance(child, _HOMOGENEOUS):
            yield qualified, child
        elif isinstance(child, _KNOWN_NON_HOMOGENEOUS):
            raise ValueError(
                f"activation {type(child).__name__} at {qualified!r} is not positively homogeneous "
                "(φ(cz) = cφ(z) fails), so α-rescaling would change the function; only ReLU-type nets qualify"
            )
        else:
            raise ValueError(
                f"unsupported module {type(child).__name__} at {qualified!r}: α-rescaling supports nested "
                "nn.Sequential of Flatten, Linear, ReLU, LeakyReLU, Identity and Dropout"
            )


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name
