"""Null models of eigenvector localization: random unit vectors, and the architecture at random init."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import torch

from hessdyn.analysis.loading import RunContext
from hessdyn.analysis.per_checkpoint import build_operator, hessian_mode
from hessdyn.analysis.tables import write_csv
from hessdyn.config import schema as s
from hessdyn.solvers import eigsh_topk
from hessdyn.trajectory import ipr, random_ipr_null

log = logging.getLogger("hessdyn.analyze")

ARCHITECTURE_SEED_BASE = 10_000  # init seeds of the architecture null, away from training seeds 0, 1, 2, ...
NULL_COLUMNS = ["null", "seed", "sample", "rank", "ipr", "ipr_normalized", "converged"]


def compute_nulls(ctx: RunContext, out_dir: Path, settings: s.AnalysisConfig, dtype: torch.dtype) -> None:
    """nulls.csv: IPR of random unit vectors in R^P and of the top-k eigenvectors at random initializations.

    Skipped when the file exists already (the folder's settings are fixed by its fingerprint).
    """
    path = out_dir / "nulls.csv"
    if path.exists():
        return
    frames = []
    model = ctx.new_model(seed=ARCHITECTURE_SEED_BASE)
    size = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if settings.null_random_vectors > 0:
        rnd = random_ipr_null(size, num_samples=settings.null_random_vectors, seed=settings.seed)
        table = rnd.table().assign(converged=pd.NA)
        frames.append(table)
    mode = hessian_mode(settings, ctx.config.optimizer)
    rows = []
    for i in range(settings.null_init_seeds):
        seed = ARCHITECTURE_SEED_BASE + i
        model = ctx.new_model(seed=seed)
        op = build_operator(model, ctx.hessian_set, settings, mode, dtype)
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
        for r in range(k):
            rows.append(
                {
                    "null": "architecture",
                    "seed": seed,
                    "sample": i,
                    "rank": r + 1,
                    "ipr": float(values[r]),
                    "ipr_normalized": float(values[r]) * size / 3.0,
                    "converged": bool(res.converged[r]),
                }
            )
        if not res.all_converged:
            log.warning(
                "architecture null seed %d: %d of %d eigenpairs unconverged",
                seed,
                int((~res.converged).sum()),
                k,
            )
    if rows:
        frames.append(pd.DataFrame(rows))
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=NULL_COLUMNS)
    write_csv(path, frame.reindex(columns=NULL_COLUMNS))
