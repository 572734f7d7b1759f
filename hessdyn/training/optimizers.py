"""torch.optim optimizers from the typed optimizer configs."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from hessdyn.config import schema as s


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
