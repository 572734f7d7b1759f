"""The diagonal scale-invariant Hessian quantity Σ_i θ_i² H_ii, beside θᵀHθ (:mod:`hessdyn.reparam.sharpness`).

Under any positive diagonal reparametrization θ' = Tθ (Dinh et al.'s α-rescaling among them) the Hessian
becomes H' = T⁻¹HT⁻¹, so H'_ii = H_ii / T_ii² and every term θ_i² H_ii is unchanged: the total, each
parameter tensor's share and each entry are exactly invariant, while tr(H) = Σ_i H_ii is not. The total
equals tr(diag|θ| H diag|θ|), the trace of :func:`hessdyn.reparam.scale_invariant_operator`, and costs
nothing once diag(H) is known (exact, or ``hessdyn.solvers.bekas_diagonal`` with standard errors).

Li et al. (2019, arXiv 1907.10732, "Hessian based analysis of SGD for deep nets: dynamics and
generalization") ask for a scale-invariant generalization quantity built on the Hessian (their question
(3)). The stored copies of that paper reachable while this was written held only its abstract and
introduction, so the equation that defines their measure could not be checked; this module provides the
diagonal α-invariant quantity as the candidate, and its name says what it computes, not whose it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from hessdyn.curvature.params import ParamLayout


@dataclass(frozen=True)
class WeightedHessianDiagonal:
    """value = Σ_i θ_i² H_ii (units of loss, like θᵀHθ); standard_error = sqrt(Σ_i θ_i⁴ se_i²) from the
    diagonal's standard errors (0 for an exact diagonal); per_block: (tensor name, its share of value)."""

    value: float
    standard_error: float
    per_block: tuple[tuple[str, float], ...]


def weighted_hessian_diagonal(
    theta: torch.Tensor,
    hessian_diagonal: torch.Tensor,
    *,
    hessian_se: torch.Tensor | None = None,
    layout: ParamLayout | None = None,
) -> WeightedHessianDiagonal:
    """Σ_i θ_i² H_ii for flat θ (P,) and diag(H) (P,) in the same layout order, in float64; `layout` splits
    it per parameter tensor."""
    theta64 = theta.detach().to(torch.float64).reshape(-1)
    diag = hessian_diagonal.detach().to(device=theta64.device, dtype=torch.float64).reshape(-1)
    if theta64.shape != diag.shape:
        raise ValueError(f"θ has {theta64.shape[0]} entries but the diagonal has {diag.shape[0]}")
    terms = theta64.pow(2) * diag
    variance = 0.0
    if hessian_se is not None:
        se = hessian_se.detach().to(device=theta64.device, dtype=torch.float64).reshape(-1)
        variance = float((theta64.pow(4) * se.pow(2)).sum())
    blocks: tuple[tuple[str, float], ...] = ()
    if layout is not None:
        if layout.numel != terms.shape[0]:
            raise ValueError(f"layout has {layout.numel} entries but θ has {terms.shape[0]}")
        blocks = tuple((n, float(terms[sl].sum())) for n, sl in zip(layout.names, layout.slices, strict=True))
    return WeightedHessianDiagonal(
        value=float(terms.sum()), standard_error=math.sqrt(variance), per_block=blocks
    )
