"""The minimal symmetric-operator protocol the sharpness measures are written against, two small
operators, and a local Lanczos top-eigenvalue routine for tests and standalone use.

The analysis passes the curvature package's operators (``matvec``, ``size``, ``dtype``, ``device``) and the
solvers package's eigensolver instead; nothing here depends on either.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class SymmetricOperator(Protocol):
    """A symmetric ``P × P`` matrix known through products: ``matvec`` maps ``(P,) -> (P,)``."""

    @property
    def size(self) -> int: ...

    @property
    def dtype(self) -> torch.dtype: ...

    @property
    def device(self) -> torch.device: ...

    def matvec(self, v: torch.Tensor) -> torch.Tensor: ...


class DenseOperator:
    """An explicit symmetric ``(P, P)`` matrix behind :class:`SymmetricOperator` (tests, dense ground truth)."""

    def __init__(self, matrix: torch.Tensor) -> None:
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ValueError(f"expected a square matrix, got shape {tuple(matrix.shape)}")
        self.matrix = matrix

    @property
    def size(self) -> int:
        return self.matrix.shape[0]

    @property
    def dtype(self) -> torch.dtype:
        return self.matrix.dtype

    @property
    def device(self) -> torch.device:
        return self.matrix.device

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        return self.matrix @ v.to(self.matrix)


class DiagonalConjugated:
    """``D A D`` with ``D = diag(diagonal)`` for any :class:`SymmetricOperator` ``A``.

    ``diagonal = |θ|`` gives the scale-invariant sharpness operator ``diag(|θ|) H diag(|θ|)``;
    ``diagonal = P^{-1/2}`` gives a preconditioned Hessian with the spectrum of ``P⁻¹H``. Zero entries are
    allowed (the direction is simply projected out); negative ones are refused.
    """

    def __init__(self, inner: SymmetricOperator, diagonal: torch.Tensor) -> None:
        if diagonal.shape != (inner.size,):
            raise ValueError(f"diagonal must have shape ({inner.size},), got {tuple(diagonal.shape)}")
        if bool((diagonal < 0).any()) or not bool(torch.isfinite(diagonal).all()):
            raise ValueError("diagonal must be finite and non-negative")
        self.inner = inner
        self.diagonal = diagonal.detach().to(device=inner.device, dtype=inner.dtype)

    @property
    def size(self) -> int:
        return self.inner.size

    @property
    def dtype(self) -> torch.dtype:
        return self.inner.dtype

    @property
    def device(self) -> torch.device:
        return self.inner.device

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        v = v.to(device=self.device, dtype=self.dtype)
        return self.diagonal * self.inner.matvec(self.diagonal * v)


@dataclass(frozen=True)
class TopEigenpair:
    """Largest (algebraic) eigenvalue of a symmetric operator and its unit eigenvector ``(P,)``.

    ``residual = ||A v − λ v||`` (computed with one extra product); ``converged`` when
    ``residual <= tol · max_i |θ_i|`` over the Ritz values (an estimate of ``||A||_2``).
    """

    eigenvalue: float
    eigenvector: torch.Tensor
    residual: float
    num_matvecs: int
    converged: bool


def lanczos_top_eigenvalue(
    operator: SymmetricOperator, *, max_iters: int = 100, tol: float = 1e-8, seed: int = 0
) -> TopEigenpair:
    """Lanczos with full reorthogonalization (float64 basis, ``O(P · max_iters)`` memory).

    Meant for small problems (tests, tiny nets): it keeps the whole Krylov basis. Exact, up to round-off,
    once ``max_iters >= P``.
    """
    size = operator.size
    iterations = min(max_iters, size)
    generator = torch.Generator().manual_seed(seed)
    q = torch.randn(size, generator=generator, dtype=torch.float64).to(operator.device)
    q = q / torch.linalg.vector_norm(q)
    basis = [q]
    alphas: list[float] = []
    betas: list[float] = []
    num_matvecs = 0
    for j in range(iterations):
        w = operator.matvec(basis[j].to(operator.dtype)).to(torch.float64)
        num_matvecs += 1
        alphas.append(float(basis[j] @ w))
        stacked = torch.stack(basis)
        for _ in range(2):  # twice is enough (Kahan–Parlett "twice is enough")
            w = w - stacked.T @ (stacked @ w)
        beta = float(torch.linalg.vector_norm(w))
        values, vectors = _tridiagonal_eigh(alphas, betas)
        scale = max(float(values.abs().max()), 1e-300)
        ritz_residual = beta * abs(float(vectors[-1, -1]))  # ||A x − θ x|| of the top Ritz pair
        invariant_subspace = beta <= 1e-14 * scale
        if j + 1 == iterations or invariant_subspace or ritz_residual <= 0.1 * tol * scale:
            break
        betas.append(beta)
        basis.append(w / beta)
    values, vectors = _tridiagonal_eigh(alphas, betas)
    eigenvalue = float(values[-1])
    eigenvector = torch.stack(basis).T @ vectors[:, -1].to(operator.device)
    eigenvector = eigenvector / torch.linalg.vector_norm(eigenvector)
    product = operator.matvec(eigenvector.to(operator.dtype)).to(torch.float64)
    residual = float(torch.linalg.vector_norm(product - eigenvalue * eigenvector))
    return TopEigenpair(
        eigenvalue=eigenvalue,
        eigenvector=eigenvector,
        residual=residual,
        num_matvecs=num_matvecs + 1,
        converged=residual <= tol * max(float(values.abs().max()), math.ulp(1.0)),
    )


def _tridiagonal_eigh(alphas: list[float], betas: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigen-decomposition of the Lanczos tridiagonal (ascending eigenvalues)."""
    k = len(alphas)
    tridiagonal = torch.diag(torch.tensor(alphas, dtype=torch.float64))
    if k > 1:
        off = torch.tensor(betas[: k - 1], dtype=torch.float64)
        tridiagonal += torch.diag(off, 1) + torch.diag(off, -1)
    return torch.linalg.eigh(tridiagonal)
