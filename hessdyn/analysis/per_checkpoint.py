"""Everything measured at one checkpoint: spectrum, traces, bounds, localization, alignment, optimizer view.

The result is a set of tidy rows (one list per output table) plus the eigenvector blocks; nothing here
touches files, so a checkpoint's result depends only on its inputs (model, data, settings, start block).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from hessdyn.config import schema as s
from hessdyn.curvature import (
    CurvatureOperator,
    DiagonalConjugate,
    HessianMode,
    HessianSet,
    curvature_operator,
)
from hessdyn.curvature.risk import EmpiricalRisk
from hessdyn.solvers import (
    DenseSpectrum,
    EigenResult,
    dense_eigh,
    eigsh_topk,
    full_spectrum,
    hutch_plus_plus,
    spectral_density,
)
from hessdyn.trajectory import (
    adam_preconditioner,
    adam_threshold,
    heavy_ball_threshold,
    ipr,
    layer_mass,
    mass_concentration,
    nesterov_threshold,
    normalized_ipr,
    rmsprop_preconditioner,
    sgd_threshold,
    top_space_alignment,
    update_alignment,
    ws_bound_from_eigenvalues,
    ws_bound_from_estimates,
)

TOP_PARAMS_RANKS = 3  # leading eigenvectors whose heaviest parameters are listed
TOP_PARAMS_COUNT = 10


@dataclass
class CheckpointInputs:
    step: int
    epoch: float
    model: nn.Module
    checkpoint: dict[str, Any]
    hessian_set: HessianSet
    settings: s.AnalysisConfig
    optimizer_cfg: s.OptimizerConfig
    dtype: torch.dtype
    start_top: torch.Tensor | None = None  # (k, P) previous checkpoint's eigenvectors (warm start)
    start_bottom: torch.Tensor | None = None
    previous_theta: torch.Tensor | None = None  # flat parameters at the previous analyzed checkpoint
    previous_top: torch.Tensor | None = None  # eigenvectors at the previous analyzed checkpoint


@dataclass
class CheckpointResult:
    step: int
    top: EigenResult
    bottom: EigenResult | None
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    hvps: int = 0
    wall_s: float = 0.0


def hessian_mode(settings: s.AnalysisConfig, optimizer_cfg: s.OptimizerConfig) -> HessianMode:
    # AdamW's decay is decoupled from the loss, so it has no Hessian term; others add (c/2)||θ||².
    decay = (
        optimizer_cfg.weight_decay if settings.include_weight_decay and optimizer_cfg.name != "adamw" else 0.0
    )
    return HessianMode(batchnorm=settings.batchnorm.value, weight_decay=decay)


def build_operator(
    model: nn.Module, hset: HessianSet, settings: s.AnalysisConfig, mode: HessianMode, dtype: torch.dtype
) -> CurvatureOperator:
    return curvature_operator(
        model,
        hset.x,
        hset.y,
        curvature=settings.curvature.value,
        batch_size=settings.batch_size,
        mode=mode,
        dtype=dtype,
    )


def _solve(
    op: CurvatureOperator,
    k: int,
    which: str,
    settings: s.AnalysisConfig,
    start: torch.Tensor | None,
    seed: int,
    full: DenseSpectrum | None = None,
) -> EigenResult:
    if full is not None:  # the dense path: one P×P diagonalization serves the top, the bottom and the traces
        return dense_eigh(op, k, which=which, tol=settings.tol, spectrum=full)
    method = settings.solver.value
    v0 = start if (settings.warm_start and start is not None and start.shape == (k, op.size)) else None
    return eigsh_topk(
        op, k, which=which, tol=settings.tol, max_hvps=settings.max_hvps, v0=v0, seed=seed, method=method
    )


def _stability(optimizer_cfg: s.OptimizerConfig, lr: float) -> tuple[float, str | None]:
    """Threshold for raw λmax (SGD-like) or for the preconditioned λmax (adaptive), and which it is for.

    At lr = 0 (the last step of a cosine schedule) there is no dynamics to be stable or not: the threshold
    is NaN, and the preconditioned λmax is still measured."""
    if not lr > 0:
        _, kind = _stability(optimizer_cfg, 1.0)
        return math.nan, kind
    if isinstance(optimizer_cfg, s.MomentumConfig):
        if optimizer_cfg.nesterov:
            return nesterov_threshold(lr, optimizer_cfg.momentum), "raw"
        return heavy_ball_threshold(lr, optimizer_cfg.momentum), "raw"
    if isinstance(optimizer_cfg, s.SGDConfig):
        return sgd_threshold(lr), "raw"
    if isinstance(optimizer_cfg, s.AdamConfig):
        return adam_threshold(lr, optimizer_cfg.beta1), "preconditioned"
    if isinstance(optimizer_cfg, s.RMSpropConfig):
        return heavy_ball_threshold(lr, optimizer_cfg.momentum), "preconditioned"
    return math.nan, None


def _preconditioner(
    optimizer_cfg: s.OptimizerConfig, state: dict[str, Any], model: nn.Module, names: tuple[str, ...]
) -> torch.Tensor | None:
    """P^{-1/2} in the operator's parameter order, or None (no adaptive state yet, e.g. at step 0)."""
    if not state.get("state"):
        return None
    all_names = [n for n, _ in model.named_parameters()]
    params = dict(model.named_parameters())
    ids = [all_names.index(n) for n in names]  # the optimizer was built from model.parameters()
    shapes = [params[n].shape for n in names]
    if isinstance(optimizer_cfg, s.AdamConfig):
        return adam_preconditioner(state, shapes, param_ids=ids).inverse_sqrt()
    if isinstance(optimizer_cfg, s.RMSpropConfig):
        return rmsprop_preconditioner(state, shapes, param_ids=ids).inverse_sqrt()
    return None


def analyze_checkpoint(inp: CheckpointInputs) -> CheckpointResult:
    """Measure one checkpoint; see the module docstring and docs/design.md for the table columns."""
    t0 = time.perf_counter()
    cfg = inp.settings
    mode = hessian_mode(cfg, inp.optimizer_cfg)
    op = build_operator(inp.model, inp.hessian_set, cfg, mode, inp.dtype)
    layout = op.layout
    size = op.size
    k = min(cfg.top_k, size)
    on = set(cfg.metrics) | {s.MetricGroup.spectrum}
    seed = cfg.seed + inp.step

    full = full_spectrum(op) if cfg.solver == s.Solver.dense else None
    top = _solve(op, k, "largest", cfg, inp.start_top, seed, full)
    bottom = None
    if s.MetricGroup.bottom in on and cfg.bottom_k > 0:
        bottom = _solve(op, min(cfg.bottom_k, size), "smallest", cfg, inp.start_bottom, seed + 1, full)

    V = top.eigenvectors
    rows: dict[str, list[dict[str, Any]]] = {
        "spectrum": [],
        "layer_mass": [],
        "summary": [],
        "top_params": [],
        "density": [],
    }
    iprs = ipr(V) if s.MetricGroup.localization in on else None
    nipr = normalized_ipr(V) if s.MetricGroup.localization in on else None
    for part, res in (("top", top), ("bottom", bottom)):
        if res is None:
            continue
        for i in range(res.eigenvalues.shape[0]):
            row = {
                "step": inp.step,
                "which": part,
                "rank": i + 1,
                "eigenvalue": float(res.eigenvalues[i]),
                "residual": float(res.residuals[i]),
                "rel_residual": float(res.relative_residuals[i]),
                "converged": bool(res.converged[i]),
                "ipr": math.nan,
                "ipr_normalized": math.nan,
                "count_50": math.nan,
                "count_90": math.nan,
            }
            if part == "top" and iprs is not None:
                conc = mass_concentration(V[i], layout, top_n=TOP_PARAMS_COUNT)
                row.update(
                    ipr=float(iprs[i]),
                    ipr_normalized=float(nipr[i]),
                    count_50=int(conc.count_50),
                    count_90=int(conc.count_90),
                )
                if i < TOP_PARAMS_RANKS:
                    for pos in range(len(conc.indices)):
                        rows["top_params"].append(
                            {
                                "step": inp.step,
                                "rank": i + 1,
                                "position": pos + 1,
                                "index": int(conc.indices[pos]),
                                "param": str(conc.params[pos]),
                                "entry": str(tuple(int(x) for x in conc.multi_indices[pos])),
                                "value": float(conc.values[pos]),
                                "mass": float(conc.mass[pos]),
                            }
                        )
            rows["spectrum"].append(row)
    if s.MetricGroup.localization in on:
        mass = layer_mass(V, layout)
        for i in range(mass.mass.shape[0]):
            for j, name in enumerate(mass.names):
                rows["layer_mass"].append(
                    {"step": inp.step, "rank": i + 1, "param": name, "mass": float(mass.mass[i, j])}
                )

    summary: dict[str, Any] = {
        "step": inp.step,
        "epoch": inp.epoch,
        "num_params": size,
        "hessian_set_size": int(inp.hessian_set.y.shape[0]),
        "lambda_max": float(top.eigenvalues[0]),
        "lambda_min": float(bottom.eigenvalues[0]) if bottom is not None else math.nan,
        "n_converged": int(top.converged.sum()),
        "all_converged": bool(top.all_converged),
    }
    if full is not None:
        summary["lambda_min"] = float(full.eigenvalues.min())

    # Traces and the Wolkowicz–Styan bound: exact on the dense path, Hutch++ estimates otherwise.
    if s.MetricGroup.trace in on:
        if full is not None:
            ev = full.eigenvalues
            ws = ws_bound_from_eigenvalues(ev)
            summary.update(
                trace=float(ev.sum()),
                trace_se=0.0,
                trace_sq=float((ev**2).sum()),
                trace_sq_se=0.0,
                ws_bound=ws.upper,
                ws_bound_se=0.0,
                ws_lower=ws.lower,
            )
        else:
            tr = hutch_plus_plus(op, cfg.trace_hvps, seed=seed + 2)
            est = ws_bound_from_estimates(
                tr.trace, tr.trace_sq, size, trace_se=tr.trace_se, trace_sq_se=tr.trace_sq_se
            )
            summary.update(
                trace=tr.trace,
                trace_se=tr.trace_se,
                trace_sq=tr.trace_sq,
                trace_sq_se=tr.trace_sq_se,
                ws_bound=est.point.upper,
                ws_bound_se=est.upper_se,
                ws_lower=est.point.lower,
                ws_bound_hi=est.upper_interval.high,
                ws_variance_clipped=est.point.variance_clipped,
            )
        summary["lambda_max_over_ws"] = (
            summary["lambda_max"] / summary["ws_bound"] if summary["ws_bound"] else math.nan
        )

    # Loss and gradient on the same objective the Hessian is taken of.
    risk = EmpiricalRisk(
        inp.model, inp.hessian_set.x, inp.hessian_set.y, batch_size=cfg.batch_size, mode=mode, dtype=inp.dtype
    )
    lg = risk.loss_and_gradient()
    summary.update(loss=lg.loss, grad_norm=float(lg.gradient.norm()))
    theta = risk.flat_params().to(torch.float64)
    if s.MetricGroup.alignment in on:
        summary["grad_alignment"] = float(top_space_alignment(V, lg.gradient).fraction)
        summary["update_alignment"] = math.nan
        if inp.previous_theta is not None and inp.previous_top is not None:
            summary["update_alignment"] = float(
                update_alignment(inp.previous_top, inp.previous_theta, theta).fraction
            )

    lr = float(inp.checkpoint.get("lr", inp.optimizer_cfg.lr))
    summary.update(
        lr=lr,
        sharpness_lr=lr * summary["lambda_max"],
        stability_threshold=math.nan,
        precond_lambda_max=math.nan,
        precond_threshold=math.nan,
    )
    if s.MetricGroup.optimizer in on:
        threshold, kind = _stability(inp.optimizer_cfg, lr)
        if kind == "raw":
            summary["stability_threshold"] = threshold
        elif kind == "preconditioned":
            summary["precond_threshold"] = threshold
            d = _preconditioner(inp.optimizer_cfg, inp.checkpoint["optimizer"], inp.model, layout.names)
            if d is not None:
                pre = eigsh_topk(
                    DiagonalConjugate(op, d), 1, tol=cfg.tol, max_hvps=cfg.max_hvps, seed=seed + 3
                )
                summary["precond_lambda_max"] = float(pre.eigenvalues[0])
                summary["precond_converged"] = bool(pre.converged[0])

    if s.MetricGroup.density in on:
        dens = spectral_density(
            op,
            cfg.density_probes,
            cfg.density_steps,
            seed=seed + 4,
            sigma=cfg.density_sigma or None,
            num_grid=400,
        )
        rows["density"] = [
            {"step": inp.step, "eigenvalue": float(x), "density": float(y)}
            for x, y in zip(dens.grid.tolist(), dens.density.tolist(), strict=True)
        ]

    summary["hvps"] = op.num_hvps
    summary["wall_s"] = time.perf_counter() - t0
    rows["summary"] = [summary]
    return CheckpointResult(inp.step, top, bottom, rows, op.num_hvps, summary["wall_s"])


def flat_parameters(model: nn.Module, names: tuple[str, ...]) -> torch.Tensor:
    params = dict(model.named_parameters())
    return torch.cat([params[n].detach().reshape(-1).to(torch.float64) for n in names])
