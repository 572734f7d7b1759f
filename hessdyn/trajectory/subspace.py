"""Overlap, principal angles and Grassmann distance between two top-k eigenspaces."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from hessdyn.trajectory._blocks import ArrayLike, as_block, to_numpy


@dataclass(frozen=True)
class SubspaceComparison:
    """Two eigenspaces spanned by the rows of ``(k_a, P)`` and ``(k_b, P)`` blocks.

    ``overlap = ||Q_aᵀ Q_b||_F² / min(k_a, k_b) = mean cos²θ_i``: 1 when the smaller space lies in the larger,
    about ``max(k_a, k_b) / P`` for independent random spaces (``random_overlap``).
    ``principal_angles`` are in radians, ascending, ``min(k_a, k_b)`` of them.
    ``grassmann_distance = sqrt(Σ θ_i²)`` (radians).
    """

    overlap: float
    principal_angles: np.ndarray
    grassmann_distance: float
    dim_a: int
    dim_b: int
    ambient_dim: int

    @property
    def random_overlap(self) -> float:
        """Expected ``overlap`` for uniformly random subspaces of the same dimensions."""
        return max(self.dim_a, self.dim_b) / self.ambient_dim


def compare_subspaces(vectors_a: ArrayLike, vectors_b: ArrayLike) -> SubspaceComparison:
    """Compare the spans of two eigenvector blocks (rows need not be exactly orthonormal: they are
    orthonormalized by QR first, in float64).

    Small angles come from sines, large ones from cosines, as in ``scipy.linalg.subspace_angles``: an
    angle θ computed as ``arccos(cos θ)`` is only accurate to ~1e-8 rad.
    """
    basis_a = _orthonormal_columns(vectors_a)
    basis_b = _orthonormal_columns(vectors_b).to(basis_a.device)
    if basis_a.shape[0] != basis_b.shape[0]:
        raise ValueError(f"blocks live in different spaces: P={basis_a.shape[0]} vs P={basis_b.shape[0]}")
    if basis_a.shape[1] < basis_b.shape[1]:
        larger, smaller = basis_b, basis_a
    else:
        larger, smaller = basis_a, basis_b
    cross = larger.T @ smaller  # (k_large, k_small)
    cosines = np.clip(to_numpy(torch.linalg.svdvals(cross)), 0.0, 1.0)  # descending
    residual = smaller - larger @ cross  # component of the smaller basis outside the larger span
    sines = np.clip(to_numpy(torch.linalg.svdvals(residual)), 0.0, 1.0)[::-1]  # ascending
    angles = np.where(cosines**2 >= 0.5, np.arcsin(sines), np.arccos(cosines))
    overlap = float(np.mean(1.0 - np.sin(angles) ** 2))
    return SubspaceComparison(
        overlap=overlap,
        principal_angles=angles,
        grassmann_distance=float(math.sqrt(float(np.sum(angles**2)))),
        dim_a=basis_a.shape[1],
        dim_b=basis_b.shape[1],
        ambient_dim=basis_a.shape[0],
    )


def subspace_overlap(vectors_a: ArrayLike, vectors_b: ArrayLike) -> float:
    """``(1/k) ||V_a V_bᵀ||_F²`` for orthonormal rows (``k = min(k_a, k_b)``); see :class:`SubspaceComparison`."""
    return compare_subspaces(vectors_a, vectors_b).overlap


def principal_angles(vectors_a: ArrayLike, vectors_b: ArrayLike) -> np.ndarray:
    """Principal angles between the row spans, radians, ascending."""
    return compare_subspaces(vectors_a, vectors_b).principal_angles


def grassmann_distance(vectors_a: ArrayLike, vectors_b: ArrayLike) -> float:
    """``sqrt(Σ θ_i²)`` over the principal angles (radians)."""
    return compare_subspaces(vectors_a, vectors_b).grassmann_distance


def _orthonormal_columns(vectors: ArrayLike) -> torch.Tensor:
    block = as_block(vectors)
    if block.shape[0] > block.shape[1]:
        raise ValueError(f"a block of {block.shape[0]} vectors in R^{block.shape[1]} cannot be independent")
    basis, _ = torch.linalg.qr(block.T)  # (P, k)
    return basis
