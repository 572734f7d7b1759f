"""Dense curvature matrices for small models: ground truth and the `solver="dense"` path."""

from __future__ import annotations

import torch

from hessdyn.curvature.operator import CurvatureOperator


def dense_matrix(op: CurvatureOperator, *, chunk: int = 64) -> torch.Tensor:
    """The explicit P×P matrix of `op`, built column block by column block (P products, in op.dtype).

    Not symmetrized: the asymmetry is the rounding error of the products, which tests may want to see.
    """
    n = op.size
    eye = torch.eye(n, dtype=op.dtype, device=op.device)
    return torch.cat([op.matmat(eye[:, i : i + chunk]) for i in range(0, n, chunk)], dim=1)


def exact_diagonal(op: CurvatureOperator, *, chunk: int = 64) -> torch.Tensor:
    """diag(A) (P,) of `op` exactly, from P products with unit vectors, `chunk` at a time (memory P × chunk,
    never P × P); returned in float64. The cost of `dense_matrix` without keeping the matrix."""
    n = op.size
    out = torch.empty(n, dtype=torch.float64, device=op.device)
    for first in range(0, n, chunk):
        last = min(first + chunk, n)
        block = torch.zeros(n, last - first, dtype=op.dtype, device=op.device)
        cols = torch.arange(last - first, device=op.device)
        block[first + cols, cols] = 1.0
        out[first:last] = op.matmat(block)[first + cols, cols].to(torch.float64)
    return out
