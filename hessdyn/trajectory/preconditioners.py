"""Diagonal preconditioners of adaptive optimizers, rebuilt from a saved optimizer ``state_dict``.

PyTorch's ``Optimizer.state_dict()`` replaces parameters by integer ids: they are numbered 0, 1, … in the
order the parameters appear across ``param_groups`` (group by group, in each group's ``params`` order), i.e.
the order in which they were handed to the optimizer. ``state[id]`` holds that parameter's buffers. An
optimizer built as ``Adam(model.parameters())`` therefore numbers parameters in ``model.parameters()``
order; otherwise pass ``param_ids`` (see :func:`optimizer_param_ids`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class DiagonalPreconditioner:
    """``P = diag(diagonal)``, flat ``(P,)`` float64 in the order of the given parameters.

    Adam/AdamW: ``sqrt(v̂) + ε`` with ``v̂ = v / (1 − β2^t)`` (``max_exp_avg_sq`` under AMSGrad).
    RMSprop: ``sqrt(v) + ε`` (centered: ``sqrt(v − m²) + ε``), no bias correction.
    """

    diagonal: torch.Tensor  # (P,)
    optimizer: str  # "adam" or "rmsprop"

    def inverse_sqrt(self) -> torch.Tensor:
        """``P^{-1/2}`` as a ``(P,)`` vector: ``λ_max(P⁻¹H) = λ_max(P^{-1/2} H P^{-1/2})``."""
        return self.diagonal.rsqrt()


ParamSpec = torch.Tensor | torch.Size | Sequence[int]


def optimizer_param_ids(optimizer: torch.optim.Optimizer, params: Sequence[torch.Tensor]) -> list[int]:
    """State-dict ids of ``params`` (in the given, flat order) for a live optimizer, matched by identity."""
    ids: dict[int, int] = {}
    index = 0
    for group in optimizer.param_groups:
        for parameter in group["params"]:
            ids[id(parameter)] = index
            index += 1
    missing = [position for position, parameter in enumerate(params) if id(parameter) not in ids]
    if missing:
        raise ValueError(f"parameters at positions {missing} are not handled by the optimizer")
    return [ids[id(parameter)] for parameter in params]


def adam_preconditioner(
    state_dict: Mapping[str, Any],
    params: Sequence[ParamSpec],
    *,
    param_ids: Sequence[int] | None = None,
) -> DiagonalPreconditioner:
    """Adam/AdamW preconditioner diagonal from ``optimizer.state_dict()``.

    Args:
        state_dict: the optimizer's state dict (ids may be ints or strings, as after a JSON round trip).
        params: the parameters (or their shapes) in flat-vector order; shapes are checked against the state.
        param_ids: the optimizer id of each entry of ``params``; default ``0, 1, …``.
    """
    buffers = _per_parameter_state(state_dict, params, param_ids)
    pieces = []
    for state, group, shape in buffers:
        if "betas" not in group:
            raise ValueError("param group has no 'betas': not an Adam/AdamW state dict")
        beta2 = float(group["betas"][1])
        key = "max_exp_avg_sq" if group.get("amsgrad", False) else "exp_avg_sq"
        second_moment = _buffer(state, key, shape).to(torch.float64)
        step = float(state["step"])
        bias_correction = 1.0 - beta2**step
        pieces.append((second_moment / bias_correction).sqrt() + float(group["eps"]))
    return DiagonalPreconditioner(torch.cat([piece.reshape(-1) for piece in pieces]), "adam")


def rmsprop_preconditioner(
    state_dict: Mapping[str, Any],
    params: Sequence[ParamSpec],
    *,
    param_ids: Sequence[int] | None = None,
) -> DiagonalPreconditioner:
    """RMSprop preconditioner diagonal ``sqrt(v) + ε`` (centered: ``sqrt(v − m²) + ε``); arguments as
    :func:`adam_preconditioner`."""
    buffers = _per_parameter_state(state_dict, params, param_ids)
    pieces = []
    for state, group, shape in buffers:
        if "alpha" not in group:
            raise ValueError("param group has no 'alpha': not an RMSprop state dict")
        second_moment = _buffer(state, "square_avg", shape).to(torch.float64)
        if group.get("centered", False):
            mean = _buffer(state, "grad_avg", shape).to(torch.float64)
            second_moment = second_moment - mean**2
        pieces.append(second_moment.sqrt() + float(group["eps"]))
    return DiagonalPreconditioner(torch.cat([piece.reshape(-1) for piece in pieces]), "rmsprop")


def _per_parameter_state(
    state_dict: Mapping[str, Any], params: Sequence[ParamSpec], param_ids: Sequence[int] | None
) -> list[tuple[Mapping[str, Any], Mapping[str, Any], torch.Size]]:
    """``(state, group, shape)`` for each parameter in flat order."""
    ids = list(range(len(params))) if param_ids is None else [int(i) for i in param_ids]
    if len(ids) != len(params):
        raise ValueError(f"{len(ids)} param ids for {len(params)} parameters")
    group_of: dict[int, Mapping[str, Any]] = {}
    for group in state_dict["param_groups"]:
        for parameter_id in group["params"]:
            group_of[int(parameter_id)] = group
    state = {int(key): value for key, value in state_dict["state"].items()}
    unknown = [i for i in ids if i not in group_of]
    if unknown:
        raise ValueError(f"param ids {unknown} are in no param group (the optimizer has {len(group_of)})")
    missing = [i for i in ids if i not in state]
    if missing:
        raise ValueError(f"no optimizer state for param ids {missing} (never received a gradient?)")
    shapes = [torch.Size(p.shape) if isinstance(p, torch.Tensor) else torch.Size(p) for p in params]
    return [(state[i], group_of[i], shape) for i, shape in zip(ids, shapes, strict=True)]


def _buffer(state: Mapping[str, Any], key: str, shape: torch.Size) -> torch.Tensor:
    if key not in state:
        raise ValueError(f"optimizer state has no {key!r} (keys: {sorted(state)})")
    buffer = state[key]
    if buffer.shape != shape:
        raise ValueError(
            f"state {key!r} has shape {tuple(buffer.shape)}, parameter has {tuple(shape)}: "
            "are the parameters in the optimizer's order (see param_ids)?"
        )
    return buffer
