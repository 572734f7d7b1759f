"""Exact eigendecomposition through the explicit matrix: ground truth and `method="dense"` for small P."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from hessdyn.curvature.dense import dense_matrix
from hessdyn.curvature.operator import CurvatureOperator
from hessdyn.solvers.results import EigenResult, Which
from hessdyn.solvers.selection import (
    check_counts,
    fix_signs,
    pair_thresholds,
    wanted_counts,
    wanted_indices,
)


@dataclass(frozen=True)
class DenseSpectrum:
    """All eigenpairs of the symmetrized float64 matrix: eigenvalues (P,) ascending, eigenvectors (P, P) as
    columns; asymmetry = max |A − Aᵀ| of the computed matrix (the products' rounding error)."""

    matrix: torch.Tensor
    eigenvalues: torch.Tensor
    eigenvectors: torch.Tensor
    asymmetry: float
    num_hvps: int


def full_spectrum(op: CurvatureOperator) -> DenseSpectrum:
    """Build the P×P matrix with P products and diagonalize it in float64."""
    before = op.num_hvps
    A = dense_matrix(op).to(torch.float64)
    asym = float((A - A.T).abs().max())
    A = 0.5 * (A + A.T)
    w, U = torch.linalg.eigh(A)
    return DenseSpectrum(A, w, U, asym, op.num_hvps - before)


def dense_eigh(
    op: CurvatureOperator,
    k: int,
    *,
    which: Which = "largest",
    tol: float = 1e-3,
    k_smallest: int | None = None,
    spectrum: DenseSpectrum | None = None,
) -> EigenResult:
    """The k extreme eigenpairs from the full spectrum, in the same result object as the iterative solvers.

    spectrum: `full_spectrum(op)` when the caller already has it (no products are then spent, and num_hvps
    repeats the products that built it)."""
    start = time.perf_counter()
    n = op.size
    k_top, k_bottom = wanted_counts(k, which, k_smallest)
    check_counts(k_top, k_bottom, n)
    spec = full_spectrum(op) if spectrum is None else spectrum
    if spec.eigenvalues.shape[0] != n:
        raise ValueError(f"spectrum has {spec.eigenvalues.shape[0]} eigenvalues, the operator has size {n}")
    w, U = spec.eigenvalues, spec.eigenvectors
    idx = wanted_indices(n, k_top, k_bottom)
    X = fix_signs(U[:, idx].T.contiguous())
    lam = w[idx]
    res = (X @ spec.matrix - lam[:, None] * X).norm(dim=1)
    scale = float(w.abs().max())
    thresholds = pair_thresholds(lam, k_top, scale, tol)
    return EigenResult(
        eigenvalues=lam,
        eigenvectors=X,
        residuals=res,
        thresholds=thresholds,
        converged=res <= thresholds,
        num_hvps=spec.num_hvps,
        wall_seconds=time.perf_counter() - start,
        which=which,
        tol=tol,
        scale=scale,
        method="dense",
        num_largest=k_top,
    )
