"""The one entry point for extreme eigenpairs of a curvature operator."""

from __future__ import annotations

from typing import Literal

import torch

from hessdyn.curvature.operator import CurvatureOperator
from hessdyn.solvers.dense_eigh import dense_eigh
from hessdyn.solvers.lanczos_topk import lanczos_topk
from hessdyn.solvers.results import EigenResult, Which
from hessdyn.solvers.selection import wanted_counts

Method = Literal["auto", "lanczos", "block", "dense"]


def eigsh_topk(
    op: CurvatureOperator,
    k: int,
    which: Which = "largest",
    tol: float = 1e-3,
    max_hvps: int | None = None,
    v0: torch.Tensor | None = None,
    seed: int = 0,
    method: Method = "auto",
    max_basis: int | None = None,
    k_smallest: int | None = None,
    guard_steps: int = 5,
) -> EigenResult:
    """k extreme eigenpairs of `op`; for which="both" the k largest and `k_smallest` (default k) smallest,
    from one Krylov space. See `EigenResult` for the fields.

    tol: residual target, ||A v − λ v|| <= tol·|λ_max| for the largest pairs and tol·max(|λ|, tol·|λ_max|)
    for the smallest (relative to the pair's own eigenvalue, see `selection.pair_thresholds`).
    max_hvps: product budget; pairs not at their threshold when it runs out come back converged=False.
    v0: start vector (P,) or start block (r, P), e.g. the previous checkpoint's eigenvectors.
    seed: random start (deterministic).
    method: "lanczos" (thick-restart Lanczos from one vector; a start block enters as the sum of its
    normalized rows), "block" (Rayleigh–Ritz on the start block or a random block of the wanted size, then
    block Krylov on the unconverged residuals), "dense" (P products and a full float64 eigendecomposition;
    max_hvps and v0 are ignored), or "auto" = "lanczos".

    What a warm start buys, and why "auto" never picks "block" (docs/measurements.md, issue 16): on the
    benchmark MLP (P = 118k, k = 20, tol 1e-3) checkpoint A's vectors, 50 SGD steps before B (top-20
    subspace overlap 0.88), take Lanczos from their sum 54 products at B, cold starts 54–65 (5 seeds, mean
    58). Their span holds >= 96 % of each of B's top-10 eigenvectors but 34–68 % of ranks 18–20, at the bulk
    edge, and those set the cost: separating them from the bulk to 1e-3·λ1 takes a polynomial degree that
    no start vector from that span shortens much (the best one, the projection of B's exact top-20 sum,
    needs 48 Krylov dimensions; B's exact sum itself 28). Methods that use the 20 vectors one by one pay 20
    products per degree: block Krylov 85, with 2 random columns 87, Chebyshev-filtered subspace iteration
    (Zhou & Saad 2007) of degree 1–8 with bounds from A had at most 18 of 20 pairs after 276–460.
    Lanczos's single long recurrence reaches a far higher degree per product; block Krylov wins only from
    an exact start block.

    guard_steps: after convergence the pairs are locked and this many Lanczos steps from a fresh random
    vector look for a wanted eigenvalue that was missed (a copy of a near-multiple eigenvalue, or a bulk-edge
    eigenvalue the Krylov sequence had not reached: without it the benchmark's top-20 at checkpoint B came
    back all "converged" with the 20th eigenvalue 5% low); 0 disables.
    """
    if method not in ("auto", "lanczos", "block", "dense"):
        raise ValueError(f"method must be 'auto', 'lanczos', 'block' or 'dense', got {method!r}")
    if method == "dense":
        return dense_eigh(op, k, which=which, tol=tol, k_smallest=k_smallest)
    if method == "auto":
        method = "lanczos"
    gen = torch.Generator().manual_seed(seed)
    if method == "lanczos" and v0 is not None and v0.dim() == 2:
        v0 = _combine_rows(v0, gen)
    if method == "block" and v0 is None:
        # A random start block of the wanted size: block Krylov shares each pass over the data among
        # its vectors, which pays when the Hessian set spans several batches.
        k_top, k_bottom = wanted_counts(k, which, k_smallest)
        v0 = torch.randn(k_top + k_bottom, op.size, generator=gen, dtype=torch.float64)
    return lanczos_topk(
        op,
        k,
        which=which,
        tol=tol,
        max_hvps=max_hvps,
        v0=v0,
        seed=seed,
        block_size=1 if method == "lanczos" else None,
        max_basis=max_basis,
        k_smallest=k_smallest,
        guard_steps=guard_steps,
    )


def _combine_rows(v0: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """One start vector holding every row of a start block with equal weight (random weights if they cancel)."""
    rows: torch.Tensor = v0.to(torch.float64)
    rows = rows / rows.norm(dim=1, keepdim=True).clamp_min(1e-300)
    combined: torch.Tensor = rows.sum(0)
    if float(combined.norm()) < 1e-6 * rows.shape[0] ** 0.5:
        weights = torch.randn(rows.shape[0], generator=gen, dtype=torch.float64).to(rows.device)
        combined = (weights[:, None] * rows).sum(0)
    return combined
