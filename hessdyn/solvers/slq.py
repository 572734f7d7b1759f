"""Stochastic Lanczos quadrature (Golub & Meurant; Ubaru, Chen & Saad 2017) of the spectral density."""

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

    sigma: Gaussian broadening (eigenvalue units); default 1% of the node range. grid: evaluation points;
        default `num_grid` points spanning the nodes ± 5σ. block_size: probes run in lockstep per block
        product (memory: block_size·num_steps·P float64 numbers).
    """
    if num_probes < 1 or num_steps < 1:
        raise ValueError(f"need num_probes >= 1 and num_steps >= 1, got {num_probes}, {num_steps}")
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
    lo, hi = float(nodes_t.min()), float(nodes_t.max())
    if sigma is None:
        sigma = 0.01 * (hi - lo) if hi > lo else max(abs(hi), 1.0) * 1e-3
    if grid is None:
        grid = torch.linspace(lo - 5 * sigma, hi + 5 * sigma, num_grid, dtype=torch.float64)
    grid = grid.to(torch.float64).cpu()
    kernel = torch.exp(-0.5 * ((grid[:, None, None] - nodes_t[None]) / sigma) ** 2) / (
        sigma * math.sqrt(2 * math.pi)
    )
    density = (kernel * weights_t[None]).sum(-1).mean(-1)
    return SpectralDensityResult(
        nodes=nodes_t,
        weights=weights_t,
        grid=grid,
        density=density,
        sigma=sigma,
        num_hvps=op.num_hvps - before,
        wall_seconds=time.perf_counter() - start,
    )
