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

    ``P`` is defined so that the optimizer's step, as PyTorch takes it, is exactly a gradient or momentum
    step preconditioned by ``P⁻¹`` (the exact forms are in the two builders' docstrings):

    * Adam/AdamW: ``P_t = (1 − β1^t) · [sqrt(v̂_t) + ε]``, ``v̂_t = v_t / (1 − β2^t)``, ``t`` = the
      parameter's step count (Cohen et al. 2022, "Adaptive gradient methods at the edge of stability",
      arXiv:2207.14484: the first-moment bias correction is folded into ``P``);
    * RMSprop: ``P = sqrt(v) + ε`` (centered: ``sqrt(v − ḡ²) + ε``); PyTorch's RMSprop has no bias
      correction, so there is no step-dependent factor.
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
    """Adam/AdamW preconditioner diagonal from ``optimizer.state_dict()``, as Cohen et al. 2022 define it.

    PyTorch's Adam takes, at step ``t`` (``state["step"]``, counted from 1),
    ``θ_t = θ_{t−1} − η · m̂_t / (sqrt(v̂_t) + ε)`` with ``m̂_t = m_t / (1 − β1^t)``,
    ``v̂_t = v_t / (1 − β2^t)`` (AMSGrad: ``v̂_t = max_{s≤t} v_s / (1 − β2^t)``). That is EMA-style heavy
    ball ``θ_t = θ_{t−1} − η P_t⁻¹ m_t`` (AdamW adds its decoupled decay ``−ηλθ_{t−1}``) with

        ``P_t = (1 − β1^t) · diag(sqrt(v̂_t) + ε)``

    (Cohen et al. 2022, arXiv:2207.14484, their definition of Adam's preconditioner; ``t`` is the number of
    updates the parameter has received, so the factors are those of the step just taken). Its threshold
    on ``λ_max(P⁻¹H)`` is :func:`~hessdyn.trajectory.stability.adam_threshold`. Dropping the factor
    ``1 − β1^t`` would understate ``λ_max(P⁻¹H)`` by ``1 / (1 − β1^t)``: ×10 at ``t = 1`` for
    ``β1 = 0.9``, ×1.54 at ``t = 10``, < 0.5 % after ``t ≈ 50``.

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
        beta1, beta2 = (float(beta) for beta in group["betas"])
        key = "max_exp_avg_sq" if group.get("amsgrad", False) else "exp_avg_sq"
        second_moment = _buffer(state, key, shape).to(torch.float64)
        step = float(state["step"])
        if not step >= 1:
            raise ValueError(f"Adam state has step={step}: the preconditioner exists after the first step")
        corrected = (second_moment / (1.0 - beta2**step)).sqrt() + float(group["eps"])
        pieces.append((1.0 - beta1**step) * corrected)
    return DiagonalPreconditioner(torch.cat([piece.reshape(-1) for piece in pieces]), "adam")


def rmsprop_preconditioner(
    state_dict: Mapping[str, Any],
    params: Sequence[ParamSpec],
    *,
    param_ids: Sequence[int] | None = None,
) -> DiagonalPreconditioner:
    """RMSprop preconditioner diagonal ``P = sqrt(v) + ε`` (centered: ``sqrt(v − ḡ²) + ε``).

    PyTorch's RMSprop keeps no bias correction, so ``P`` has no step-dependent factor: without momentum
    the step is ``θ_t = θ_{t−1} − η P_t⁻¹ g_t`` (threshold ``2/η`` on ``λ_max(P⁻¹H)``); with momentum β
    it is classical heavy ball ``b_t = β b_{t−1} + P_t⁻¹ g_t``, ``θ_t = θ_{t−1} − η b_t`` (threshold
    ``(2 + 2β)/η``). Arguments as :func:`adam_preconditioner`."""
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
