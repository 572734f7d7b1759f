"""One-call constructors from (model, data) to curvature operators and gradients."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from hessdyn.curvature.ggn import GGNOperator
from hessdyn.curvature.hessian import HessianOperator, HvpBackend
from hessdyn.curvature.mode import HessianMode
from hessdyn.curvature.operator import CurvatureOperator
from hessdyn.curvature.risk import EmpiricalRisk, LossFn

Curvature = Literal["hessian", "ggn"]


def curvature_operator(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    curvature: Curvature = "hessian",
    loss_fn: LossFn | None = None,
    batch_size: int | None = None,
    params: Sequence[str] | None = None,
    mode: HessianMode | None = None,
    dtype: torch.dtype | None = None,
    backend: HvpBackend = "auto",
    sample_weights: torch.Tensor | None = None,
) -> CurvatureOperator:
    """Hessian or GGN of the mean loss of `model` over (x (N, ...), y (N,)), P×P over the selected parameters.

    loss_fn(logits, y) -> mean loss (default: cross-entropy); batch_size=None evaluates all N at once;
    params selects parameter names/prefixes (default: all trainable); dtype casts a private copy of the
    model (default: the model's dtype); sample_weights (N,) weights the examples (see EmpiricalRisk). `model`
    itself is never modified.
    """
    risk = EmpiricalRisk(
        model,
        x,
        y,
        loss_fn=loss_fn,
        batch_size=batch_size,
        params=params,
        mode=mode,
        dtype=dtype,
        sample_weights=sample_weights,
    )
    if curvature == "hessian":
        return HessianOperator(risk, backend=backend)
    if curvature == "ggn":
        if backend not in ("auto", "double_backward"):
            raise ValueError(
                f"the GGN has a single reverse-mode back end; backend={backend!r} is not available"
            )
        return GGNOperator(risk)
    raise ValueError(f"curvature must be 'hessian' or 'ggn', got {curvature!r}")


def flat_gradient(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    loss_fn: LossFn | None = None,
    batch_size: int | None = None,
    params: Sequence[str] | None = None,
    mode: HessianMode | None = None,
    dtype: torch.dtype | None = None,
    sample_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """∇L(θ) as a flat (P,) vector: the gradient of the same objective the curvature operators differentiate."""
    risk = EmpiricalRisk(
        model,
        x,
        y,
        loss_fn=loss_fn,
        batch_size=batch_size,
        params=params,
        mode=mode,
        dtype=dtype,
        sample_weights=sample_weights,
    )
    return risk.loss_and_gradient().gradient
