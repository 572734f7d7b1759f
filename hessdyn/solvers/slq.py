"""Stochastic Lanczos quadrature of the spectral density (Golub & Meurant 2010; Ubaru, Chen & Saad, SIAM J.
Matrix Anal. Appl. 38, 2017), broadened by a Gaussian as in the Lanczos method of Lin, Saad & Yang (SIAM
Review 58, 2016)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from hessdyn.curvature.operator import CurvatureOperator
from hessdyn.solvers.probes import apply64, rademacher
from hessdyn.solvers.results import SpectralDensityResult


@dataclass(frozen=True)
class Tridiagonal:
    """Lanczos coefficients of b start vectors: alpha (b, m) diagonal, beta (b, m−1) off-diagonal.
    steps (b,): steps actually taken (fewer than m when a Krylov space became invariant); entries past a
    probe's steps are zero."""

    alpha: torch.Tensor
    beta: torch.Tensor
    steps: torch.Tensor


def lanczos_tridiagonal(op: CurvatureOperator, V0: torch.Tensor, num_steps: int) -> Tridiagonal:
    """`num_steps` Lanczos steps from each column of V0 (P, b) in lockstep (one block product per step),
    with full reorthogonalization in float64 so the quadrature has no ghost nodes."""
    n, b = V0.shape
    m = min(num_steps, n)
    basis = torch.zeros(b, m, n, dtype=torch.float64, device=V0.device)
    v = (V0 / V0.norm(dim=0)).T.contiguous()  # (b, n)
    alpha = torch.zeros(b, m, dtype=torch.float64, device=V0.device)
    beta = torch.zeros(b, max(m - 1, 0), dtype=torch.float64, device=V0.device)
    steps = torch.full((b,), m, dtype=torch.long, device=V0.device)
    active = torch.ones(b, dtype=torch.bool, device=V0.device)
    for i in range(m):
        basis[:, i] = v
        w = apply64(op, v.T).T  # (b, n)
        alpha[:, i] = (w * v).sum(1) * active
        for _ in range(2):  # w ← w − V Vᵀ w, twice
            w -= torch.einsum(
                "bj,bjn->bn", torch.einsum("bjn,bn->bj", basis[:, : i + 1], w), basis[:, : i + 1]
            )
        if i == m - 1:
            break
        nrm = w.norm(dim=1)
        scale = alpha[:, : i + 1].abs().max(dim=1).values.clamp_min(1e-300)
        ended = active & (nrm <= 1e-12 * scale)  # invariant subspace: the quadrature is already exact
        steps[ended] = i + 1
        active &= ~ended
        beta[:, i] = nrm * active
        v = torch.where(active[:, None], w / nrm.clamp_min(1e-300)[:, None], torch.zeros_like(w))
    return Tridiagonal(alpha.cpu(), beta.cpu(), steps.cpu())


def spectral_density(
    op: CurvatureOperator,
    num_probes: int = 10,
    num_steps: int = 80,
    *,
    seed: int = 0,
    sigma: float | None = None,
    grid: torch.Tensor | None = None,
    num_grid: int = 1000,
    block_size: int = 1,
) -> SpectralDensityResult:
    """Eigenvalue density of `op` from `num_probes` normalized Rademacher probes, `num_steps` steps each.

    sigma: Gaussian broadening (eigenvalue units); default `node_spacing_sigma` (the median gap between a
        probe's neighbouring Gauss nodes, the finest detail the quadrature resolves). grid: evaluation
        points (cell centres, >= 2, increasing); default `num_grid` points spanning the nodes ± 5σ.
        block_size: probes run in lockstep per block product (memory: block_size·num_steps·P float64).
    """
    if num_probes < 1 or num_steps < 1:
        raise ValueError(f"need num_probes >= 1 and num_steps >= 1, got {num_probes}, {num_steps}")
    if sigma is not None and not sigma > 0:
        raise ValueError(f"sigma must be > 0 (or None for the node-spacing default), got {sigma}")
    start = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    before = op.num_hvps
    nodes, weights = [], []
    for first in range(0, num_probes, block_size):
        Z = rademacher(op.size, min(block_size, num_probes - first), gen, op.device)
        tri = lanczos_tridiagonal(op, Z, num_steps)
        for a, bt, s in zip(tri.alpha, tri.beta, tri.steps.tolist(), strict=True):
            T = torch.diag(a[:s]) + torch.diag(bt[: s - 1], 1) + torch.diag(bt[: s - 1], -1)
            theta, U = torch.linalg.eigh(T)
            pad = a.shape[0] - s  # zero-weight nodes keep the arrays rectangular
            nodes.append(torch.cat([theta, theta.new_full((pad,), float(theta[-1]))]))
            weights.append(torch.cat([U[0].pow(2), U.new_zeros(pad)]))
    nodes_t, weights_t = torch.stack(nodes), torch.stack(weights)
    rule = "given" if sigma is not None else "node spacing"
    if sigma is None:
        sigma = node_spacing_sigma(nodes_t, weights_t)
    if grid is None:
        lo, hi = float(nodes_t.min()), float(nodes_t.max())
        grid = torch.linspace(lo - 5 * sigma, hi + 5 * sigma, num_grid, dtype=torch.float64)
    grid = grid.to(torch.float64).cpu()
    return SpectralDensityResult(
        nodes=nodes_t,
        weights=weights_t,
        grid=grid,
        density=broadened_density(nodes_t, weights_t, grid, sigma),
        sigma=sigma,
        sigma_rule=rule,
        num_hvps=op.num_hvps - before,
        wall_seconds=time.perf_counter() - start,
    )


def node_spacing_sigma(nodes: torch.Tensor, weights: torch.Tensor) -> float:
    """Default broadening: the median gap between neighbouring nodes of one probe (nodes with weight > 0).

    Why the node spacing: between two neighbouring Gauss nodes the quadrature's distribution function is
    only known to within one node weight (the Chebyshev–Markov–Stieltjes inequalities, Szegő 1939, §3.41;
    for SLQ, Chen, Trogdon & Ubaru, ICML 2021), so detail finer than the local spacing is not in the data,
    and a Gaussian narrower than it draws each probe's comb of nodes instead of a density. A Gaussian as
    wide as the spacing leaves ripples of relative size 2·exp(−2π²) ≈ 5e-9 on evenly spaced equal-weight
    nodes. The median is the spacing where most nodes are, the bulk: Gauss nodes crowd where the spectral
    measure has mass, and the few isolated nodes of outlier eigenvalues have wide gaps that do not move it.
    It shrinks as num_steps grows, so more steps resolve more. The former default, 1 % of the node range,
    is set by the largest outlier: 0.17 on a bulk 1 wide beside λmax ≈ 17 (issue 17).
    Fallback when no probe has two nodes (an operator with one eigenvalue): 1e-3·max(|node|, 1).
    """
    gaps = []
    for theta, w in zip(nodes, weights, strict=True):
        t = theta[w > 0].sort().values
        gaps.append(t.diff())
    g = torch.cat(gaps)
    g = g[g > 0]
    if g.numel() == 0:
        return 1e-3 * max(float(nodes.abs().max()), 1.0)
    return float(torch.quantile(g, 0.5))


def broadened_density(
    nodes: torch.Tensor, weights: torch.Tensor, grid: torch.Tensor, sigma: float
) -> torch.Tensor:
    """(G,) mean over probes of Σ_j w_j·N(x; θ_j, σ²), averaged over each grid point's cell.

    Cell edges lie halfway between neighbouring grid points (the outer cells mirror their inner halves), and
    the value is the Gaussian mass in the cell over its width, (Φ((b − θ)/σ) − Φ((a − θ)/σ))/(b − a). Unlike
    point values this keeps every node's mass whatever the grid spacing: on a grid coarser than σ an isolated
    node is neither dropped between two points nor counted at a peak height it has only at one spot.
    """
    if grid.dim() != 1 or grid.numel() < 2 or not bool((grid.diff() > 0).all()):
        raise ValueError(f"grid must hold >= 2 increasing points, got shape {tuple(grid.shape)}")
    mid = 0.5 * (grid[1:] + grid[:-1])
    edges = torch.cat([2 * grid[:1] - mid[:1], mid, 2 * grid[-1:] - mid[-1:]])
    cdf = 0.5 * (1 + torch.erf((edges[:, None, None] - nodes[None]) / (sigma * math.sqrt(2))))
    mass = ((cdf[1:] - cdf[:-1]) * weights[None]).sum(-1).mean(-1)
    return mass / edges.diff()
