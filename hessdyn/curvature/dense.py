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
