"""Gradient noise against curvature: how the per-example gradient covariance C sits in the Hessian H's frame.

Pure functions of eigenvector blocks ``(k, P)`` (unit rows), diagonals ``(P,)`` and anything that multiplies a
``(P, r)`` block with ``@`` (a ``hessdyn.curvature`` operator or a dense matrix). Everything is float64.

* Top-subspace overlap of C and H with its random baseline: :func:`hessdyn.trajectory.compare_subspaces`
  (``overlap``, ``random_overlap`` = max(k_C, k_H)/P); not repeated here.
* :func:`compress_jointly` restricts C and H to their joint top subspace, Q = orth([V_Hᵀ, V_Cᵀ]) (P × r,
  r <= k_H + k_C, directions shared by both blocks counted once), as the r × r matrices QᵀCQ and QᵀHQ: r
  products of each operator, the whole cost of the two metrics below.
* :func:`commutation`: ||[A, B]||_F / (||A||_F ||B||_F) for A = QᵀCQ, B = QᵀHQ. 0 when C and H share
  eigenvectors spanning Q (then A and B commute), at most √2; independent of the scales of C and H.
  Zhang, Yang & Tu (arXiv 2602.05600) argue that C and H commute approximately (C ∝ E_p[h_p²] with
  H = E_p[h_p], their abstract); this measures how approximately, inside the subspace that carries both.
* :func:`noise_fraction_in_subspace`: tr(Π_H C) / tr(C), Π_H the projector on span(V_H): the share of the
  per-example gradient variance along H's top-k directions (k/P for isotropic noise).
* :func:`diagonal_power_law`: γ and its confidence interval from C_ii ∝ H_ii^γ (Zhang, Yang & Tu report
  1 <= γ <= 2, fitted per layer in v2 of the paper).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import stats

from hessdyn.trajectory._blocks import ArrayLike, as_block, as_vector, to_numpy
from hessdyn.trajectory.layout import LayoutLike, as_layout


@dataclass(frozen=True)
class JointCompression:
    """C and H restricted to their joint top subspace.

    basis (P, r): orthonormal columns Q spanning the rows of V_H and V_C. noise, curvature (r, r): QᵀCQ and
    QᵀHQ, symmetrized (units of C and H). num_products: products of each operator spent (= r).
    """

    basis: torch.Tensor
    noise: torch.Tensor
    curvature: torch.Tensor
    num_products: int

    @property
    def dim(self) -> int:
        return int(self.basis.shape[1])


def joint_basis(vectors_a: ArrayLike, vectors_b: ArrayLike, *, rtol: float = 1e-10) -> torch.Tensor:
    """(P, r) orthonormal basis of the span of the rows of both blocks, from an SVD of [V_aᵀ, V_bᵀ]: singular
    values below rtol · the largest are dropped, so a direction present in both blocks is counted once."""
    block_a, block_b = as_block(vectors_a), as_block(vectors_b).to(as_block(vectors_a).device)
    if block_a.shape[1] != block_b.shape[1]:
        raise ValueError(f"blocks live in different spaces: P={block_a.shape[1]} vs P={block_b.shape[1]}")
    U, S, _ = torch.linalg.svd(torch.cat([block_a, block_b]).T, full_matrices=False)
    basis: torch.Tensor = U[:, : int((S > rtol * S[0]).sum())]
    return basis


def compress_jointly(
    noise: Any, curvature: Any, noise_vectors: ArrayLike, curvature_vectors: ArrayLike
) -> JointCompression:
    """QᵀCQ and QᵀHQ for Q = joint_basis(V_H, V_C): r products of `noise` (C) and of `curvature` (H).

    noise, curvature: P × P symmetric, anything supporting ``op @ (P, r) block`` (operators cast the block to
    their dtype). noise_vectors (k_C, P), curvature_vectors (k_H, P): e.g. top-k eigenvectors of C and H.
    """
    Q = joint_basis(curvature_vectors, noise_vectors)
    return JointCompression(
        basis=Q,
        noise=_compress(noise, Q),
        curvature=_compress(curvature, Q),
        num_products=int(Q.shape[1]),
    )


def _compress(op: Any, Q: torch.Tensor) -> torch.Tensor:
    product = torch.as_tensor(op @ Q).to(device=Q.device, dtype=torch.float64)
    A = Q.T @ product
    return (A + A.T) / 2


@dataclass(frozen=True)
class Commutation:
    """value = ||AB − BA||_F / (||A||_F ||B||_F) in [0, √2] (dimensionless); the three norms in the units of
    AB, A and B; dim: size r of the subspace A and B act on (the full P for dense inputs)."""

    value: float
    commutator_norm: float
    noise_norm: float
    curvature_norm: float
    dim: int


def commutation(noise: torch.Tensor, curvature: torch.Tensor) -> Commutation:
    """Relative commutator of two symmetric matrices, e.g. ``compression.noise, compression.curvature`` (the
    restricted measure) or dense C and H of a small model (the full one). NaN if either matrix is zero."""
    A, B = noise.to(torch.float64), curvature.to(torch.float64)
    if A.shape != B.shape or A.dim() != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"need two square matrices of one size, got {tuple(A.shape)} and {tuple(B.shape)}")
    AB = A @ B
    commutator = float(torch.linalg.matrix_norm(AB - AB.T))  # BA = (AB)ᵀ for symmetric A, B
    norm_a, norm_b = float(torch.linalg.matrix_norm(A)), float(torch.linalg.matrix_norm(B))
    value = commutator / (norm_a * norm_b) if norm_a > 0 and norm_b > 0 else math.nan
    return Commutation(value, commutator, norm_a, norm_b, int(A.shape[0]))


@dataclass(frozen=True)
class NoiseFraction:
    """Share of the gradient variance tr(C) along a k-dimensional subspace (typically H's top-k).

    fraction = captured / trace, captured = tr(Π C) (units of C); fraction_se from trace_se (delta method,
    0 for an exact trace). directional (k,): v_iᵀ C v_i for each given unit vector v_i. random_fraction: k/P,
    the expected fraction for a uniformly random k-subspace or isotropic noise.
    """

    fraction: float
    fraction_se: float
    captured: float
    trace: float
    directional: np.ndarray
    random_fraction: float
    dim: int
    ambient_dim: int


def noise_fraction_in_subspace(
    compression: JointCompression, vectors: ArrayLike, noise_trace: float, *, noise_trace_se: float = 0.0
) -> NoiseFraction:
    """tr(Π C)/tr(C) for Π the projector on the rows of `vectors` (k, P), which must lie in
    ``compression.basis`` (the curvature or noise block it was built from): no further products.

    noise_trace: tr(C), e.g. ``gradient_moment_diagonals(...).covariance_trace`` or a Hutchinson estimate
    (then pass its standard error as noise_trace_se).
    """
    block = as_block(vectors).to(compression.basis.device)
    coords = block @ compression.basis  # (k, r): the rows in the basis Q
    outside = float((block - coords @ compression.basis.T).norm()) / math.sqrt(block.shape[0])
    if outside > 1e-6:
        raise ValueError(f"the vectors leave the compression's subspace (rms residual {outside:.2e})")
    directional = torch.einsum("kr,rs,ks->k", coords, compression.noise, coords)
    orth, _ = torch.linalg.qr(coords.T)  # (r, k) orthonormal basis of the rows' span, in Q coordinates
    captured = float(torch.trace(orth.T @ compression.noise @ orth))
    fraction = captured / noise_trace if noise_trace > 0 else math.nan
    return NoiseFraction(
        fraction=fraction,
        fraction_se=abs(fraction) * noise_trace_se / noise_trace if noise_trace > 0 else math.nan,
        captured=captured,
        trace=float(noise_trace),
        directional=to_numpy(directional),
        random_fraction=block.shape[0] / block.shape[1],
        dim=int(block.shape[0]),
        ambient_dim=int(block.shape[1]),
    )


@dataclass(frozen=True)
class PowerLawFit:
    """Least-squares fit of ln C_ii = ln a + γ ln H_ii over the usable entries (natural logs).

    gamma, gamma_se: slope and its standard error; ci_low/ci_high: the `confidence` t-interval (n − 2 degrees
    of freedom), which treats entries as independent draws around the line, so it is a lower bound on the
    real uncertainty when neighbouring entries are correlated. prefactor: a (units of C over units of H^γ).
    r_squared: in log space. Entries left out, counted separately: H_ii <= 0 (`nonpositive_curvature`; a
    negative curvature has no power), C_ii <= 0 (`nonpositive_noise`, e.g. dead units), and, when standard
    errors are given, positive entries within `min_significance` standard errors of zero (`insignificant`).
    Fields are NaN when fewer than 3 entries remain or all used H_ii are equal.
    """

    gamma: float
    gamma_se: float
    ci_low: float
    ci_high: float
    confidence: float
    prefactor: float
    r_squared: float
    num_used: int
    num_total: int
    nonpositive_curvature: int
    nonpositive_noise: int
    insignificant: int


def diagonal_power_law(
    curvature_diagonal: ArrayLike,
    noise_diagonal: ArrayLike,
    *,
    curvature_se: ArrayLike | None = None,
    noise_se: ArrayLike | None = None,
    min_significance: float = 2.0,
    confidence: float = 0.95,
) -> PowerLawFit:
    """γ in C_ii ∝ H_ii^γ (Zhang, Yang & Tu, arXiv 2602.05600) from the diagonals of H and C, (P,) each.

    Non-positive entries cannot enter a log-log fit and are left out and counted (see PowerLawFit). With
    stochastic diagonals (``hessdyn.solvers.bekas_diagonal``) pass their standard errors: entries not
    `min_significance` SEs above zero are left out too, since their logarithm is dominated by noise. Noise in
    H_ii biases γ towards 0 (errors in the regressor) and the cut truncates small entries, so prefer exact
    diagonals where affordable and read a stochastic γ together with `insignificant`.
    """
    h, c = to_numpy(as_vector(curvature_diagonal)), to_numpy(as_vector(noise_diagonal))
    if h.shape != c.shape:
        raise ValueError(f"diagonals differ in length: {h.shape[0]} vs {c.shape[0]}")
    positive = (h > 0) & (c > 0)
    significant = positive.copy()
    if curvature_se is not None:
        significant &= h > min_significance * to_numpy(as_vector(curvature_se))
    if noise_se is not None:
        significant &= c > min_significance * to_numpy(as_vector(noise_se))
    x, y = np.log(h[significant]), np.log(c[significant])
    line = _least_squares_line(x, y, confidence)
    return PowerLawFit(
        gamma=line.slope,
        gamma_se=line.slope_se,
        ci_low=line.slope - line.half_width,
        ci_high=line.slope + line.half_width,
        confidence=confidence,
        prefactor=math.exp(line.intercept),
        r_squared=line.r_squared,
        num_used=int(significant.sum()),
        num_total=int(h.shape[0]),
        nonpositive_curvature=int((h <= 0).sum()),
        nonpositive_noise=int(((c <= 0) & (h > 0)).sum()),
        insignificant=int((positive & ~significant).sum()),
    )


@dataclass(frozen=True)
class _Line:
    """y ≈ intercept + slope·x by ordinary least squares; half_width of the slope's t-interval."""

    slope: float
    intercept: float
    slope_se: float
    half_width: float
    r_squared: float


def _least_squares_line(x: np.ndarray, y: np.ndarray, confidence: float) -> _Line:
    n = x.shape[0]
    sxx = float(((x - x.mean()) ** 2).sum()) if n else 0.0
    if n < 3 or sxx == 0.0:
        return _Line(math.nan, math.nan, math.nan, math.nan, math.nan)
    slope = float(((x - x.mean()) * (y - y.mean())).sum()) / sxx
    intercept = float(y.mean()) - slope * float(x.mean())
    residuals = y - (intercept + slope * x)
    ss_res, ss_tot = float((residuals**2).sum()), float(((y - y.mean()) ** 2).sum())
    se = math.sqrt(ss_res / (n - 2) / sxx)
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 2)) * se
    return _Line(slope, intercept, se, half, 1.0 - ss_res / ss_tot if ss_tot > 0 else math.nan)


@dataclass(frozen=True)
class BlockPowerLaw:
    """The power-law fit of one parameter tensor's diagonal entries."""

    name: str
    fit: PowerLawFit


def diagonal_power_law_by_block(
    curvature_diagonal: ArrayLike,
    noise_diagonal: ArrayLike,
    layout: LayoutLike,
    *,
    curvature_se: ArrayLike | None = None,
    noise_se: ArrayLike | None = None,
    min_significance: float = 2.0,
    confidence: float = 0.95,
) -> tuple[BlockPowerLaw, ...]:
    """:func:`diagonal_power_law` on each parameter tensor of `layout` (a ParamLayout or (name, numel) pairs),
    as Zhang, Yang & Tu fit γ per layer."""
    h, c = as_vector(curvature_diagonal), as_vector(noise_diagonal)
    h_se = None if curvature_se is None else as_vector(curvature_se)
    c_se = None if noise_se is None else as_vector(noise_se)
    out = []
    for entry in as_layout(layout, h.shape[0]):
        sl = entry.slice
        fit = diagonal_power_law(
            h[sl],
            c[sl],
            curvature_se=None if h_se is None else h_se[sl],
            noise_se=None if c_se is None else c_se[sl],
            min_significance=min_significance,
            confidence=confidence,
        )
        out.append(BlockPowerLaw(entry.name, fit))
    return tuple(out)
