"""Null models of eigenvector localization: random unit vectors, and the architecture at random init."""

from __future__ import annotations

import logging
from typing import Any

import torch

from hessdyn.analysis.checkpoint import build_operator, hessian_mode
from hessdyn.analysis.loading import RunContext
from hessdyn.config import schema as s
from hessdyn.solvers import eigsh_topk
from hessdyn.store import AnalysisDir
from hessdyn.trajectory import ipr, random_ipr_null

log = logging.getLogger("hessdyn.analyze")

ARCHITECTURE_SEED_BASE = 10_000  # init seeds of the architecture null, away from training seeds 0, 1, 2, ...


def _random_rows(size: int, settings: s.AnalysisConfig) -> list[dict[str, Any]]:
    """IPR of ``null_random_vectors`` uniformly random unit vectors in R^P (no rank: no spectrum)."""
    if settings.null_random_vectors <= 0:
        return []
    rnd = random_ipr_null(size, num_samples=settings.null_random_vectors, seed=settings.seed)
    return [
        {
            "null": "random",
            "seed": rnd.seed,
            "sample": i,
            "ipr": float(value),
            "ipr_normalized": float(size * value / 3.0),
        }
        for i, value in enumerate(rnd.samples)
    ]


def _architecture_rows(
    ctx: RunContext, settings: s.AnalysisConfig, dtype: torch.dtype, size: int
) -> list[dict[str, Any]]:
    """IPR of the top-k eigenvectors at ``null_init_seeds`` random initializations of the architecture."""
    mode = hessian_mode(settings, ctx.config.optimizer)
    rows = []
    for i in range(settings.null_init_seeds):
        seed = ARCHITECTURE_SEED_BASE + i
        op = build_operator(ctx.new_model(seed=seed), ctx.hessian_set, settings, mode, dtype, ctx.dist)
        k = min(settings.top_k, op.size)
        res = eigsh_topk(
            op,
            k,
            tol=settings.tol,
            max_hvps=settings.max_hvps,
            seed=settings.seed,
            method=settings.solver.value,
        )
        values = ipr(res.eigenvectors)
        rows += [
            {
                "null": "architecture",
                "seed": seed,
                "sample": i,
                "rank": r + 1,
                "ipr": float(values[r]),
                "ipr_normalized": float(values[r]) * size / 3.0,
                "converged": bool(res.converged[r]),
            }
            for r in range(k)
        ]
        if not res.all_converged:
            log.warning(
                "architecture null seed %d: %d of %d eigenpairs unconverged",
                seed,
                int((~res.converged).sum()),
                k,
            )
    return rows


def compute_nulls(ctx: RunContext, adir: AnalysisDir, settings: s.AnalysisConfig, dtype: torch.dtype) -> None:
    """nulls.csv: IPR of random unit vectors in R^P and of the top-k eigenvectors at random initializations.

    Skipped when the file exists already (the folder's settings are fixed by its fingerprint).
    """
    if ctx.dist.broadcast_object(adir.has_table("nulls") if ctx.dist.is_writer else None):
        return
    model = ctx.new_model(seed=ARCHITECTURE_SEED_BASE)
    size = sum(p.numel() for p in model.parameters() if p.requires_grad)
    rows = _random_rows(size, settings) + _architecture_rows(ctx, settings, dtype, size)
    if ctx.dist.is_writer:
        adir.write_table("nulls", rows, all_columns=True)
