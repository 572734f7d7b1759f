"""The ``noise`` metric group: gradient noise against curvature at one checkpoint.

Over the Hessian set, with its weights (w_n = 1/N), batching and Hessian mode (:meth:`Checkpoint.risk`), g_n the
gradient of example n's loss and ḡ their mean: the covariance C = Σ_n w_n (g_n − ḡ)(g_n − ḡ)ᵀ and the second
moment M = C + ḡḡᵀ (:mod:`hessdyn.curvature.gradient_moments`), beside H, the analysis' curvature operator.
C is one example's gradient noise; a minibatch of B drawn without replacement from the N training examples has
covariance C·(N − B)/(B(N − 1)) (the ``minibatch_*`` columns; the fractions and overlaps are the same for
both). Per checkpoint, in this order:

1. the top-k eigenpairs of C and of M with H's solver, tolerance and budget, warm-started from the previous
   checkpoint's (kept in its eigenvector file as the extra sets ``noise_covariance`` and
   ``noise_second_moment``);
2. exact diag(C), tr(C) and tr(M) from per-example gradients (one pass, memory bounded by a chunk);
3. diag(H) for the power-law fit: exact from P unit-vector products (free on the dense path), or Bekas et
   al.'s stochastic estimate with its standard errors (:class:`HessianDiagonal` says which; the size rule is
   ``analysis.noise_diagonal``: auto = exact when P ≤ ``analysis.noise_exact_params``);
4. the overlap of the top-k spaces of C (and of M) with H's, the commutator of C and H restricted to their
   joint top subspace, the share of tr(C) in H's top-k space (:mod:`hessdyn.trajectory.noise`);
5. γ of C_ii ∝ H_ii^γ over all entries and per parameter tensor (Zhang, Yang & Tu, arXiv 2602.05600), and the
   rescaling-invariant Σ_i θ_i² H_ii beside θᵀHθ (:mod:`hessdyn.reparam`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import torch

from hessdyn.analysis.checkpoint import Checkpoint, pair_fields
from hessdyn.config import schema as s
from hessdyn.config.errors import HessdynError
from hessdyn.curvature import (
    CovarianceOperator,
    PerSampleGradientsUndefined,
    SecondMomentOperator,
    exact_diagonal,
    gradient_moment_diagonals,
)
from hessdyn.reparam import quadratic_form, weighted_hessian_diagonal
from hessdyn.solvers import EigenResult, bekas_diagonal
from hessdyn.trajectory import (
    PowerLawFit,
    commutation,
    compare_subspaces,
    compress_jointly,
    diagonal_power_law,
    diagonal_power_law_by_block,
    noise_fraction_in_subspace,
)

COVARIANCE_SET = "noise_covariance"  # the extra eigenpair sets in a checkpoint's eigenvector file
MOMENT_SET = "noise_second_moment"
_MATRIX = {COVARIANCE_SET: "covariance", MOMENT_SET: "second_moment"}


@dataclass(frozen=True)
class HessianDiagonal:
    """diag(H) (P,) float64 with its standard errors (None when exact) and tr(H) = Σ_i H_ii with its error.

    method: ``exact`` (P products with unit vectors, or the dense path's matrix) or ``bekas`` (num_probes
    Rademacher probes; the trace is then Hutchinson's estimate from the same probes)."""

    values: torch.Tensor
    standard_error: torch.Tensor | None
    trace: float
    trace_se: float
    method: str


def hessian_diagonal(c: Checkpoint) -> HessianDiagonal:
    """diag(H) by the size rule of ``analysis.noise_diagonal`` (see the module docstring)."""
    cfg = c.settings
    if c.full is not None:  # the dense path has the matrix already
        values = c.full.matrix.diagonal().to(torch.float64)
        return HessianDiagonal(values, None, float(values.sum()), 0.0, "exact")
    exact = cfg.noise_diagonal == s.NoiseDiagonal.exact or (
        cfg.noise_diagonal == s.NoiseDiagonal.auto and c.op.size <= cfg.noise_exact_params
    )
    if exact:
        values = exact_diagonal(c.op)
        return HessianDiagonal(values, None, float(values.sum()), 0.0, "exact")
    est = bekas_diagonal(c.op, cfg.noise_probes, seed=c.seed + 7)
    return HessianDiagonal(est.diagonal, est.standard_error, est.trace, est.trace_se, "bekas")


def measure_noise(c: Checkpoint) -> None:
    """Rows of noise.csv, noise_spectrum.csv and noise_gamma.csv, and the C and M eigenpairs to save."""
    start = time.perf_counter()
    inp, cfg = c.inputs, c.settings
    risk = c.local_risk()
    try:
        cov, mom = CovarianceOperator(risk), SecondMomentOperator(risk)
    except PerSampleGradientsUndefined as exc:  # the config check refuses this before anything is written
        raise HessdynError(f"analysis.metrics=noise: {exc}") from exc
    top = c.top_pairs()
    k = min(cfg.noise_top_k or cfg.top_k, top.eigenvalues.shape[0])
    for name, op, offset in ((COVARIANCE_SET, cov, 5), (MOMENT_SET, mom, 6)):
        c.extra[name] = c.solve(k, "largest", inp.start_extra.get(name), c.seed + offset, op=op)
        op.release_graph()  # keeps one kept forward pass alive at a time
        c.table_rows("noise_spectrum").extend(_pair_rows(inp.step, _MATRIX[name], c.extra[name]))
    moments = gradient_moment_diagonals(risk)
    diag = hessian_diagonal(c)
    V_h, V_c, V_m = (
        top.eigenvectors[:k],
        c.extra[COVARIANCE_SET].eigenvectors,
        c.extra[MOMENT_SET].eigenvectors,
    )
    joint = compress_jointly(cov, c.op, V_c, V_h)
    cov.release_graph()
    fraction = noise_fraction_in_subspace(joint, V_h, moments.covariance_trace)
    with_c, with_m = compare_subspaces(V_c, V_h), compare_subspaces(V_m, V_h)
    assert c.theta is not None  # set by the spectrum group
    weighted = weighted_hessian_diagonal(c.theta, diag.values, hessian_se=diag.standard_error)
    scale = minibatch_scale(inp.train_batch_size, inp.train_size)
    row: dict[str, Any] = {
        "step": inp.step,
        "trace_covariance": moments.covariance_trace,
        "trace_second_moment": moments.second_moment_trace,
        "trace_hessian": diag.trace,
        "trace_hessian_se": diag.trace_se,
        "diagonal": diag.method,
        "covariance_over_hessian": moments.covariance_trace / diag.trace if diag.trace else math.nan,
        "top_k": k,
        "overlap_covariance_hessian": with_c.overlap,
        "overlap_moment_hessian": with_m.overlap,
        "random_overlap": with_c.random_overlap,
        "commutation": commutation(joint.noise, joint.curvature).value,
        "commutation_dim": joint.dim,
        "noise_fraction_top_k": fraction.fraction,
        "train_batch_size": inp.train_batch_size,
        "train_size": inp.train_size,
        "minibatch_noise_trace": scale * moments.covariance_trace,
        "minibatch_noise_top_k": scale * fraction.captured,
        "theta_h_theta": quadratic_form(c.op, c.theta),
        "theta2_h_diagonal": weighted.value,
        "theta2_h_diagonal_se": weighted.standard_error,
        "converged_covariance": int(c.extra[COVARIANCE_SET].converged.sum()),
        "converged_moment": int(c.extra[MOMENT_SET].converged.sum()),
        "moment_products": cov.num_hvps + mom.num_hvps,
    }
    c.table_rows("noise_gamma").extend(_gamma_rows(c, diag, moments.covariance))
    row["wall_s"] = time.perf_counter() - start
    c.table_rows("noise").append(row)


def minibatch_scale(batch_size: int | None, train_size: int | None) -> float:
    """(N − B)/(B(N − 1)): a minibatch of B of N examples drawn without replacement has gradient covariance
    C times this (C the per-example covariance over the N); 0 for full batch, NaN when B or N is unknown."""
    if batch_size is None or train_size is None:
        return math.nan
    if batch_size >= train_size:
        return 0.0
    return (train_size - batch_size) / (batch_size * (train_size - 1))


def _pair_rows(step: int, matrix: str, res: EigenResult) -> list[dict[str, Any]]:
    return [
        {
            "step": step,
            "matrix": matrix,
            **pair_fields(res, i),
        }
        for i in range(res.eigenvalues.shape[0])
    ]


def _gamma_rows(c: Checkpoint, diag: HessianDiagonal, noise: torch.Tensor) -> list[dict[str, Any]]:
    """noise_gamma.csv rows: the fit over all entries (param = all), then one per parameter tensor."""
    fits = [("all", diagonal_power_law(diag.values, noise, curvature_se=diag.standard_error))]
    fits += [
        (b.name, b.fit)
        for b in diagonal_power_law_by_block(
            diag.values, noise, c.op.layout, curvature_se=diag.standard_error
        )
    ]
    return [_gamma_row(c.inputs.step, name, fit) for name, fit in fits]


def _gamma_row(step: int, param: str, fit: PowerLawFit) -> dict[str, Any]:
    return {
        "step": step,
        "param": param,
        "gamma": fit.gamma,
        "gamma_se": fit.gamma_se,
        "gamma_low": fit.ci_low,
        "gamma_high": fit.ci_high,
        "r_squared": fit.r_squared,
        "used": fit.num_used,
        "entries": fit.num_total,
        "nonpositive_curvature": fit.nonpositive_curvature,
        "nonpositive_noise": fit.nonpositive_noise,
        "insignificant": fit.insignificant,
    }
