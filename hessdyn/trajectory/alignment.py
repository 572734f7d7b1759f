"""How much of a gradient or an update lies in the top-k Hessian eigenspace."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from hessdyn.trajectory._blocks import ArrayLike, as_block, as_vector, to_numpy


@dataclass(frozen=True)
class TopSpaceAlignment:
    """Alignment of a vector ``g`` with the span of ``k`` eigenvectors.

    ``fraction = ||P_V g||² / ||g||²`` in [0, 1] (about ``k / P`` for a random ``g``);
    ``shares[i] = <v_i, g>² / ||g||²`` (they sum to ``fraction`` for orthonormal rows).
    All NaN when ``g = 0``.
    """

    fraction: float
    shares: np.ndarray  # (k,)
    norm: float  # ||g||, in the units of g


def top_space_alignment(vectors: ArrayLike, g: ArrayLike) -> TopSpaceAlignment:
    """Alignment of a flat ``(P,)`` vector (e.g. the full-batch gradient) with a ``(k, P)`` eigenvector block.

    The projection uses the block's Gram matrix, so it is the projection on the span even if the rows
    are not exactly orthonormal.
    """
    block = as_block(vectors)
    vector = as_vector(g).to(block.device)
    if vector.shape[0] != block.shape[1]:
        raise ValueError(f"vector has {vector.shape[0]} entries, eigenvectors have P={block.shape[1]}")
    norm_sq = float(vector @ vector)
    if norm_sq == 0.0:
        nan = np.full(block.shape[0], np.nan)
        return TopSpaceAlignment(math.nan, nan, 0.0)
    coefficients = block @ vector  # (k,)
    gram_inverse = torch.linalg.pinv(block @ block.T, hermitian=True)
    projected_sq = float(coefficients @ gram_inverse @ coefficients)
    return TopSpaceAlignment(
        fraction=min(max(projected_sq / norm_sq, 0.0), 1.0),
        shares=to_numpy(coefficients**2) / norm_sq,
        norm=math.sqrt(norm_sq),
    )


def update_alignment(
    vectors: ArrayLike, theta_before: ArrayLike, theta_after: ArrayLike
) -> TopSpaceAlignment:
    """Alignment of the update ``Δθ = θ(t') − θ(t)`` between consecutive checkpoints (flat ``(P,)`` each)."""
    return top_space_alignment(vectors, as_vector(theta_after) - as_vector(theta_before))
