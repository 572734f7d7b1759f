"""Hutch++ (Meyer, Musco, Musco & Woodruff, SOSA 2021): exact trace on a sketched top subspace plus
Hutchinson on the rest, and the same split for tr(A²)."""

from __future__ import annotations

import time

import torch

from hessdyn.curvature.operator import CurvatureOperator
from hessdyn.solvers.probes import apply64, mean_and_se, rademacher
from hessdyn.solvers.results import TraceResult


def hutch_plus_plus(op: CurvatureOperator, num_hvps: int = 99, *, seed: int = 0) -> TraceResult:
    """tr(A) ≈ tr(QᵀAQ) + mean_g gᵀ(I−Π)A(I−Π)g and tr(A²) ≈ ||AQ||²_F + mean_g ||A(I−Π)g||².

    The budget is split in thirds: the sketch A·S, the products A·Q with Q = orth(A·S), and the Hutchinson
    probes g on the complement of Π = QQᵀ. Standard errors are those of the Hutchinson part, conditional
    on Q (the deflated part is exact given Q).
    """
    if num_hvps < 6:
        raise ValueError(f"Hutch++ needs num_hvps >= 6 (three parts, two probes each), got {num_hvps}")
    start = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    m = num_hvps // 3
    S = rademacher(op.size, m, gen, op.device)
    Q, _ = torch.linalg.qr(apply64(op, S))
    AQ = apply64(op, Q)
    G = rademacher(op.size, num_hvps - 2 * m, gen, op.device)
    G -= Q @ (Q.T @ G)
    AG = apply64(op, G)
    tr, tr_se = mean_and_se((G * AG).sum(0))
    tr2, tr2_se = mean_and_se(AG.pow(2).sum(0))
    return TraceResult(
        trace=float((Q * AQ).sum()) + tr,
        trace_se=tr_se,
        trace_sq=float(AQ.pow(2).sum()) + tr2,
        trace_sq_se=tr2_se,
        num_probes=G.shape[1],
        num_hvps=num_hvps,
        wall_seconds=time.perf_counter() - start,
        method="hutch++",
    )
