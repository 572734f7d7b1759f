"""Dinh et al. (2017) at one checkpoint: α-rescaled copies of a ReLU MLP and how each sharpness measure moves.

The function is unchanged (``output_diff`` ~ 0) while λmax and the trace move with α; θᵀHθ and
λmax(diag|θ| H diag|θ|) stay put; ε-sharpness (Keskar, box radius ε(|θ|+1)) only approximately. Every
measure is of the analysis' objective: the Hessian set, its batching, and the Hessian mode.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch

from hessdyn.analysis.checkpoint import build_operator, hessian_mode
from hessdyn.analysis.loading import RunContext
from hessdyn.config import schema as s
from hessdyn.curvature import CurvatureOperator, EmpiricalRisk
from hessdyn.reparam import (
    alpha_grid,
    alpha_rescale,
    max_output_difference,
    rescalable_layers,
    sharpness_measures,
)
from hessdyn.solvers import eigsh_topk, hutch_plus_plus
from hessdyn.store import AnalysisDir

log = logging.getLogger("hessdyn.analyze")


def reparam_rows(
    ctx: RunContext, adir: AnalysisDir, settings: s.AnalysisConfig, dtype: torch.dtype, step: int
) -> None:
    """reparam.csv at checkpoint ``step`` over ``settings.reparam_alphas``; skipped for non-ReLU models."""
    if adir.has_table("reparam"):
        return
    model, _ = ctx.load(step)
    try:
        layers = rescalable_layers(model)
    except ValueError as exc:
        log.warning("reparam skipped: %s", exc)
        return
    mode = hessian_mode(settings, ctx.config.optimizer)
    x, y = ctx.hessian_set.x, ctx.hessian_set.y
    base = model.to(dtype)

    def top(op: CurvatureOperator) -> float:
        return float(
            eigsh_topk(op, 1, tol=settings.tol, max_hvps=settings.max_hvps, seed=settings.seed).eigenvalues[0]
        )

    def trace(op: CurvatureOperator) -> float:
        return hutch_plus_plus(op, settings.trace_hvps, seed=settings.seed).trace

    rows: list[dict[str, Any]] = []
    for point in alpha_grid(len(layers), settings.reparam_alphas):
        scaled = alpha_rescale(base, point.scalings).model
        measures = sharpness_measures(
            EmpiricalRisk(scaled, x, y, batch_size=settings.batch_size, mode=mode, dtype=dtype),
            hessian=build_operator(scaled, ctx.hessian_set, settings, mode, dtype),
            top_eigenvalue=top,
            trace=trace,
            epsilon=settings.eps_sharpness,
            seed=settings.seed,
        )
        eps = measures.epsilon_sharpness
        rows.append(
            {
                "step": step,
                "alpha": point.alpha,
                "scalings": " ".join(f"{a:g}" for a in point.scalings),
                "output_diff": max_output_difference(base, scaled, x.to(dtype)),
                "loss": eps.loss if eps is not None else math.nan,
                "lambda_max": measures.lambda_max,
                "trace": measures.trace,
                "eps_sharpness": eps.relative_increase_percent if eps is not None else math.nan,
                "theta_h_theta": measures.theta_hessian_theta,
                "scaled_lambda_max": measures.scale_invariant_lambda_max,
            }
        )
    adir.write_table("reparam", rows)
