"""Coercion of eigenvector blocks and vectors to float64 torch tensors.

Every metric in this package works in float64 on the block's own device: overlaps close to 1 enter the
displacement as 1 - |o|, which float32 cannot resolve below ~1e-7.
"""

from __future__ import annotations

import numpy as np
import torch

ArrayLike = torch.Tensor | np.ndarray


def as_float64(x: ArrayLike) -> torch.Tensor:
    """Return ``x`` as a float64 torch tensor on its own device (numpy arrays go to the CPU)."""
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.asarray(x, dtype=np.float64))
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor or numpy.ndarray, got {type(x).__name__}")
    return x.detach().to(torch.float64)


def as_block(vectors: ArrayLike, *, normalize: bool = True) -> torch.Tensor:
    """Return eigenvectors as a float64 ``(k, P)`` block; a single ``(P,)`` vector becomes ``(1, P)``.

    With ``normalize`` the rows are rescaled to unit norm: solvers return unit rows up to round-off and
    float32 storage, and a defensive renormalization keeps overlaps inside [0, 1].
    """
    block = as_float64(vectors)
    if block.ndim == 1:
        block = block.unsqueeze(0)
    if block.ndim != 2:
        raise ValueError(f"expected a (k, P) block or a (P,) vector, got shape {tuple(block.shape)}")
    if block.shape[0] == 0 or block.shape[1] == 0:
        raise ValueError(f"empty eigenvector block of shape {tuple(block.shape)}")
    if normalize:
        norms = torch.linalg.vector_norm(block, dim=1, keepdim=True)
        if bool((norms == 0).any()):
            raise ValueError("eigenvector block has a zero row")
        block = block / norms
    return block


def as_vector(x: ArrayLike) -> torch.Tensor:
    """Return a flat float64 ``(P,)`` tensor (any input shape is flattened)."""
    return as_float64(x).reshape(-1)


def as_eigenvalues(values: ArrayLike | None, expected: int) -> np.ndarray | None:
    """Return eigenvalues as a float64 numpy ``(k,)`` array of the expected length, or None."""
    if values is None:
        return None
    if isinstance(values, torch.Tensor):
        array = to_numpy(values).reshape(-1)
    else:
        array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.shape[0] != expected:
        raise ValueError(f"got {array.shape[0]} eigenvalues for {expected} eigenvectors")
    return array


def to_numpy(x: torch.Tensor) -> np.ndarray:
    """Move a small tensor (k-sized, not P-sized) to a float64 numpy array."""
    return x.detach().to("cpu", torch.float64).numpy()
