"""What each metric group measures at one checkpoint: one function per group, each adding rows to the
checkpoint's tables (columns: :mod:`hessdyn.store.registry`). :mod:`hessdyn.analysis.groups` runs the
groups that are on, in order; ``spectrum`` always first, since every other group uses its eigenpairs.
"""

from __future__ import annotations

import math
from typing import Any, cast

import torch

from hessdyn.analysis.checkpoint import Checkpoint, pair_fields
from hessdyn.config import schema as s
from hessdyn.curvature import DiagonalConjugate, is_three_layer, three_layer_traces
from hessdyn.solvers import EigenResult, Method, eigsh_topk, hutch_plus_plus, spectral_density
from hessdyn.training.optimizers import preconditioner_inverse_sqrt, stability_threshold
from hessdyn.trajectory import (
    ipr,
    layer_mass,
    mass_concentration,
    normalized_ipr,
    top_space_alignment,
    update_alignment,
    ws_bound_from_eigenvalues,
    ws_bound_from_estimates,
    ws_bound_from_traces,
)

TOP_PARAMS_RANKS = 3  # leading eigenvectors whose heaviest parameters are listed
TOP_PARAMS_COUNT = 10
DENSITY_GRID = 400


def _eigenpair_rows(step: int, which: str, res: EigenResult) -> list[dict[str, Any]]:
    """spectrum.csv rows of one solve; the localization columns stay empty unless that group fills them."""
    return [
        {
            "step": step,
            "which": which,
            **pair_fields(res, i),
            "ipr": math.nan,
            "ipr_normalized": math.nan,
            "count_50": math.nan,
            "count_90": math.nan,
        }
        for i in range(res.eigenvalues.shape[0])
    ]


def measure_spectrum(c: Checkpoint) -> None:
    """Top-k eigenpairs, and the summary row's basics: loss and gradient on the Hessian set (the objective
    the Hessian is taken of), the learning rate and η·λmax of the loss as trained."""
    inp, cfg = c.inputs, c.settings
    top = c.top = c.solve(min(cfg.top_k, c.op.size), "largest", inp.start_top, c.seed)
    c.table_rows("spectrum").extend(_eigenpair_rows(inp.step, "top", top))
    c.summary.update(
        step=inp.step,
        epoch=inp.epoch,
        num_params=c.op.size,
        hessian_set_size=int(inp.hessian_set.y.shape[0]),
        lambda_max=float(top.eigenvalues[0]),
        lambda_min=float(c.full.eigenvalues.min()) if c.full is not None else math.nan,
        n_converged=int(top.converged.sum()),
        all_converged=bool(top.all_converged),
    )
    risk = c.risk()
    lg = risk.loss_and_gradient()
    c.gradient, c.theta = lg.gradient, risk.flat_params().to(torch.float64)
    lr = float(inp.checkpoint.get("lr", inp.optimizer_cfg.lr))
    c.summary.update(
        loss=lg.loss,
        grad_norm=float(lg.gradient.norm()),
        lr=lr,
        sharpness_lr=lr * stability_lambda_max(c),
        stability_threshold=math.nan,
        precond_lambda_max=math.nan,
        precond_threshold=math.nan,
    )


def stability_lambda_max(c: Checkpoint) -> float:
    """λmax of the Hessian the stability columns are of (:attr:`Checkpoint.stability_op`). For a batch-norm
    net whose loss as trained differs from the analysis' Hessian, its top eigenvalue is solved here and
    recorded beside the analysis' own (``lambda_max_trained``); else it is ``lambda_max``."""
    if c.trained_op is None:
        c.summary["stability_mode"] = "analysis"
        return float(c.summary["lambda_max"])
    cfg = c.settings
    method: Method = "lanczos" if cfg.solver == s.Solver.block else cast(Method, cfg.solver.value)  # one pair
    trained = eigsh_topk(c.trained_op, 1, tol=cfg.tol, max_hvps=cfg.max_hvps, seed=c.seed + 5, method=method)
    c.summary.update(
        stability_mode="batch_statistics",
        lambda_max_trained=float(trained.eigenvalues[0]),
        lambda_max_trained_converged=bool(trained.converged[0]),
    )
    return float(trained.eigenvalues[0])


def measure_bottom(c: Checkpoint) -> None:
    """The ``bottom_k`` smallest eigenpairs (negative curvature)."""
    cfg = c.settings
    if cfg.bottom_k <= 0:
        return
    bottom = c.bottom = c.solve(min(cfg.bottom_k, c.op.size), "smallest", c.inputs.start_bottom, c.seed + 1)
    c.table_rows("spectrum").extend(_eigenpair_rows(c.inputs.step, "bottom", bottom))
    if c.full is None:  # the dense path has the exact minimum already
        c.summary["lambda_min"] = float(bottom.eigenvalues[0])


def measure_localization(c: Checkpoint) -> None:
    """IPR and mass concentration of the top eigenvectors (in spectrum.csv), their heaviest entries
    (top_params.csv) and their mass per parameter tensor (layer_mass.csv)."""
    step, V, layout = c.inputs.step, c.top_pairs().eigenvectors, c.op.layout
    iprs, nipr = ipr(V), normalized_ipr(V)
    top_rows = [r for r in c.table_rows("spectrum") if r["which"] == "top"]
    for i, row in enumerate(top_rows):
        conc = mass_concentration(V[i], layout, top_n=TOP_PARAMS_COUNT)
        row.update(
            ipr=float(iprs[i]),
            ipr_normalized=float(nipr[i]),
            count_50=int(conc.count_50),
            count_90=int(conc.count_90),
        )
        if i < TOP_PARAMS_RANKS:
            c.table_rows("top_params").extend(
                {
                    "step": step,
                    "rank": i + 1,
                    "position": pos + 1,
                    "index": int(conc.indices[pos]),
                    "param": str(conc.params[pos]),
                    "entry": str(tuple(int(x) for x in conc.multi_indices[pos])),
                    "value": float(conc.values[pos]),
                    "mass": float(conc.mass[pos]),
                }
                for pos in range(len(conc.indices))
            )
    mass = layer_mass(V, layout)
    c.table_rows("layer_mass").extend(
        {"step": step, "rank": i + 1, "param": name, "mass": float(mass.mass[i, j])}
        for i in range(mass.mass.shape[0])
        for j, name in enumerate(mass.names)
    )


def measure_trace(c: Checkpoint) -> None:
    """tr(H), tr(H²) and the Wolkowicz–Styan bound: exact on the dense path, Hutch++ estimates otherwise."""
    summary = c.summary
    if c.full is not None:
        ev = c.full.eigenvalues
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
        tr = hutch_plus_plus(c.op, c.settings.trace_hvps, seed=c.seed + 2)
        est = ws_bound_from_estimates(
            tr.trace, tr.trace_sq, c.op.size, trace_se=tr.trace_se, trace_sq_se=tr.trace_sq_se
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
    measure_exact_traces(c)


def measure_exact_traces(c: Checkpoint) -> None:
    """For a three_layer net: tr(H), tr(H²) and the WS bounds from the closed form (exact, no HVPs), of
    the same objective as the operator (Hessian set, mean over it, Hessian mode with its weight decay).
    Not for curvature=ggn: the closed form is of the Hessian. Columns ``*_exact`` of summary.csv."""
    inp = c.inputs
    if c.settings.curvature != s.Curvature.hessian or not is_three_layer(inp.model):
        return
    hset = inp.hessian_set
    exact = three_layer_traces(inp.model, hset.x, hset.y, mode=c.mode, dtype=inp.dtype)
    ws = ws_bound_from_traces(exact.trace, exact.trace_sq, exact.size)
    c.summary.update(
        trace_exact=exact.trace,
        trace_sq_exact=exact.trace_sq,
        ws_bound_exact=ws.upper,
        ws_lower_exact=ws.lower,
        lambda_max_over_ws_exact=c.summary["lambda_max"] / ws.upper if ws.upper else math.nan,
    )


def measure_alignment(c: Checkpoint) -> None:
    """Share of the gradient, and of the update since the previous analyzed checkpoint, in the top-k space."""
    inp, V = c.inputs, c.top_pairs().eigenvectors
    assert c.gradient is not None and c.theta is not None  # set by the spectrum group
    c.summary["grad_alignment"] = float(top_space_alignment(V, c.gradient).fraction)
    c.summary["update_alignment"] = math.nan
    if inp.previous_theta is not None and inp.previous_top is not None:
        c.summary["update_alignment"] = float(
            update_alignment(inp.previous_top, inp.previous_theta, c.theta).fraction
        )


def measure_optimizer(c: Checkpoint) -> None:
    """The optimizer's stability threshold, and for adaptive optimizers the preconditioned λmax, of the
    loss as trained (:attr:`Checkpoint.stability_op`: batch statistics for a batch-norm net)."""
    inp, cfg = c.inputs, c.settings
    threshold = stability_threshold(inp.optimizer_cfg, c.summary["lr"])
    if threshold.operator == "hessian":
        c.summary["stability_threshold"] = threshold.value
    elif threshold.operator == "preconditioned":
        c.summary["precond_threshold"] = threshold.value
        d = preconditioner_inverse_sqrt(
            inp.optimizer_cfg, inp.checkpoint["optimizer"], inp.model, c.op.layout.names
        )
        if d is not None:
            pre = eigsh_topk(
                DiagonalConjugate(c.stability_op, d), 1, tol=cfg.tol, max_hvps=cfg.max_hvps, seed=c.seed + 3
            )
            c.summary["precond_lambda_max"] = float(pre.eigenvalues[0])
            c.summary["precond_converged"] = bool(pre.converged[0])


def measure_density(c: Checkpoint) -> None:
    """The spectral density (stochastic Lanczos quadrature) on a grid."""
    cfg = c.settings
    dens = spectral_density(
        c.op,
        cfg.density_probes,
        cfg.density_steps,
        seed=c.seed + 4,
        sigma=cfg.density_sigma or None,
        num_grid=DENSITY_GRID,
    )
    c.table_rows("density").extend(
        {"step": c.inputs.step, "eigenvalue": float(x), "density": float(y)}
        for x, y in zip(dens.grid.tolist(), dens.density.tolist(), strict=True)
    )
