"""torch.optim optimizers from the typed optimizer configs, and what each optimizer implies for curvature:
its stability threshold, its diagonal preconditioner, the weight decay its gradient carries."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from hessdyn.config import schema as s
from hessdyn.trajectory import (
    adam_preconditioner,
    adam_threshold,
    heavy_ball_threshold,
    nesterov_threshold,
    rmsprop_preconditioner,
    sgd_threshold,
)


def build_optimizer(cfg: s.OptimizerConfig, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    params = list(params)
    if isinstance(cfg, s.SAMConfig):
        from hessdyn.training.sam import build_sam  # sam builds its base optimizer with this function

        return build_sam(cfg.base_config(), params, rho=cfg.rho, adaptive=cfg.adaptive, eta=cfg.eta)
    if isinstance(cfg, s.MomentumConfig):
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay
        )
    if isinstance(cfg, s.SGDConfig):
        return torch.optim.SGD(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if isinstance(cfg, s.AdamWConfig):
        return torch.optim.AdamW(
            params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps, weight_decay=cfg.weight_decay
        )
    if isinstance(cfg, s.AdamConfig):
        return torch.optim.Adam(
            params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps, weight_decay=cfg.weight_decay
        )
    if isinstance(cfg, s.RMSpropConfig):
        return torch.optim.RMSprop(
            params,
            lr=cfg.lr,
            alpha=cfg.alpha,
            eps=cfg.eps,
            momentum=cfg.momentum,
            weight_decay=cfg.weight_decay,
        )
    raise ValueError(f"unknown optimizer {cfg.name!r}")


Operator = Literal["hessian", "preconditioned"]


@dataclass(frozen=True)
class StabilityThreshold:
    """The largest curvature the optimizer is stable under at learning rate ``lr`` on a quadratic (see
    :mod:`hessdyn.trajectory.stability`), and the operator whose λmax it bounds: ``hessian`` (SGD, momentum),
    ``preconditioned`` (Adam/AdamW: (2+2β1)/((1−β1)η); RMSprop: (2+2m)/η), or None where none is claimed.
    ``value`` is NaN at lr = 0 (the end of a cosine schedule: no dynamics) and where operator is None."""

    value: float
    operator: Operator | None


def stability_threshold(cfg: s.OptimizerConfig, lr: float) -> StabilityThreshold:
    """The stability threshold of optimizer ``cfg`` at learning rate ``lr``."""
    operator = _threshold_operator(cfg)
    if operator is None or not lr > 0:
        return StabilityThreshold(math.nan, operator)
    if isinstance(cfg, s.MomentumConfig):
        momentum = cfg.momentum
        value = nesterov_threshold(lr, momentum) if cfg.nesterov else heavy_ball_threshold(lr, momentum)
    elif isinstance(cfg, s.AdamConfig):
        value = adam_threshold(lr, cfg.beta1)
    elif isinstance(cfg, s.RMSpropConfig):
        value = heavy_ball_threshold(lr, cfg.momentum)
    else:
        value = sgd_threshold(lr)
    return StabilityThreshold(value, operator)


def _threshold_operator(cfg: s.OptimizerConfig) -> Operator | None:
    if isinstance(cfg, (s.SGDConfig, s.MomentumConfig)):
        return "hessian"
    if isinstance(cfg, (s.AdamConfig, s.RMSpropConfig)):
        return "preconditioned"
    return None


def preconditioner_inverse_sqrt(
    cfg: s.OptimizerConfig, state: Mapping[str, Any], model: nn.Module, names: Sequence[str]
) -> torch.Tensor | None:
    """``P^{-1/2}`` of an Adam/AdamW/RMSprop state dict (built from ``model.parameters()``), flat in the order of
    the parameter ``names``; None for other optimizers and before the first update (no state yet)."""
    if not isinstance(cfg, (s.AdamConfig, s.RMSpropConfig)) or not state.get("state"):
        return None
    all_names = [n for n, _ in model.named_parameters()]
    params = dict(model.named_parameters())
    ids = [all_names.index(n) for n in names]  # the optimizer was built from model.parameters()
    shapes = [params[n].shape for n in names]
    if isinstance(cfg, s.AdamConfig):
        return adam_preconditioner(state, shapes, param_ids=ids).inverse_sqrt()
    return rmsprop_preconditioner(state, shapes, param_ids=ids).inverse_sqrt()


def coupled_weight_decay(cfg: s.OptimizerConfig) -> float:
    """The coefficient c of the L2 term (c/2)·||θ||² whose gradient the optimizer adds to the loss's (torch's
    ``weight_decay`` of SGD, Adam, RMSprop); 0 for AdamW, whose decay is decoupled from the gradient."""
    return 0.0 if isinstance(cfg, s.AdamWConfig) else float(cfg.weight_decay)
