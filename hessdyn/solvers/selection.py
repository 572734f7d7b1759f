"""Which eigenpairs a request wants: counts at each end of the spectrum and their indices."""

from __future__ import annotations

import torch

from hessdyn.solvers.results import Which


def wanted_counts(k: int, which: Which, k_smallest: int | None = None) -> tuple[int, int]:
    """(number of largest, number of smallest) pairs asked for."""
    if which == "largest":
        return k, 0
    if which == "smallest":
        return 0, k
    if which == "both":
        return k, k if k_smallest is None else k_smallest
    raise ValueError(f"which must be 'largest', 'smallest' or 'both', got {which!r}")


def check_counts(k_top: int, k_bottom: int, n: int) -> None:
    if min(k_top, k_bottom) < 0 or not 1 <= k_top + k_bottom <= n:
        raise ValueError(f"need 1 <= wanted pairs <= P = {n}, got {k_top} largest and {k_bottom} smallest")


def wanted_indices(j: int, k_top: int, k_bottom: int) -> torch.Tensor:
    """Indices into j ascending eigenvalues: the largest descending, then the smallest ascending."""
    return torch.cat([torch.arange(j - 1, j - 1 - k_top, -1), torch.arange(0, k_bottom)])


def fix_signs(X: torch.Tensor) -> torch.Tensor:
    """Rows of X flipped in place so each row's largest-magnitude entry is positive."""
    signs = torch.sign(X.gather(1, X.abs().argmax(dim=1, keepdim=True)))
    X *= torch.where(signs == 0, torch.ones_like(signs), signs)
    return X


def pair_thresholds(values: torch.Tensor, k_top: int, scale: float, tol: float) -> torch.Tensor:
    """Residual bound each wanted pair must meet, in eigenvalue units; `values` holds the k_top largest
    first, then the smallest.

    Largest pairs: tol·scale (scale = |λ|max), the accuracy that matters next to λmax. Smallest pairs:
    tol·max(|λ|, tol·scale), relative to the pair's own eigenvalue, the convergence test of ARPACK
    (Lehoucq, Sorensen & Yang 1998, dsconv: ||r|| <= tol·max(|θ|, eps^(2/3))), with the floor tol·scale in
    place of eps^(2/3) so that an eigenvalue below the resolution tol·|λ|max needs no more than an absolute
    accuracy tol²·|λ|max (reachable with float32 products, whose rounding is about 1e-7·|λ|max). Since some
    eigenvalue lies within ||r|| of each Ritz value, a converged bottom pair has a relative error <= tol
    (when |λ| >= tol·scale); a tol·scale bound instead lets pairs near the bottom, typically |λ| << |λ|max,
    pass with errors of several percent and the wrong rank.
    """
    out = torch.full_like(values, tol * scale)
    bottom = values[k_top:]
    out[k_top:] = tol * torch.clamp(bottom.abs(), min=tol * scale)
    return out
