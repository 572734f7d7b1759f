"""Sharpness measures and which of them survive Dinh et al.'s α-rescaling.

Under an α-rescaling ``θ' = T θ`` (``T`` positive diagonal, see :mod:`hessdyn.reparam.rescaling`) the
Hessian becomes ``H' = T⁻¹ H T⁻¹``. Hence, in exact arithmetic:

* ``λ_max(H)`` and ``tr(H)``: **not invariant**; Dinh et al. make them arbitrarily large or small.
* ``θᵀ H θ``: **exactly invariant**, ``θ'ᵀ H' θ' = θᵀ T T⁻¹ H T⁻¹ T θ`` (true for any linear symmetry).
* ``λ_max(diag(|θ|) H diag(|θ|))``: **exactly invariant**, the operator itself is unchanged because
  ``diag(|Tθ|) T⁻¹ = diag(|θ|)`` for a positive diagonal ``T`` (not for non-diagonal symmetries).
* ε-sharpness (Keskar et al. 2017) with the box radius ``ε(|θ_i| + 1)``: **only approximately
  invariant**: the ``+ 1`` does not scale with ``T``, so the box changes shape wherever ``|θ_i|`` is not
  ≫ 1. With ``offset = 0`` (radius ``ε|θ_i|``) the box maps to itself (``δ' = T δ``) and the sign-gradient
  ascent used here is equivariant (``sign(T⁻¹ g) = sign(g)``), so the measure becomes exactly invariant.

Floating point makes "exactly" mean "to round-off"; the tests check all four statements.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from hessdyn.curvature.hessian import HessianOperator
from hessdyn.curvature.operator import CurvatureOperator, DiagonalConjugate
from hessdyn.curvature.risk import EmpiricalRisk
from hessdyn.solvers import eigsh_topk

TopEigenvalueFn = Callable[[CurvatureOperator], float]
TraceFn = Callable[[CurvatureOperator], float]


def local_top_eigenvalue(operator: CurvatureOperator) -> float:
    """Default ``top_eigenvalue``: the package's Lanczos to a tight tolerance (1e-8 relative residual); the
    analysis injects its configured tolerance and budget instead. Raises if it does not converge."""
    result = eigsh_topk(operator, 1, tol=1e-8)
    if not result.all_converged:
        raise RuntimeError(
            f"top eigenvalue not converged in {result.num_hvps} products; pass top_eigenvalue= with a budget"
        )
    return float(result.eigenvalues[0])


def quadratic_form(operator: CurvatureOperator, theta: torch.Tensor) -> float:
    """``θᵀ H θ`` (units of loss): invariant under α-rescaling."""
    theta = theta.detach().to(device=operator.device, dtype=operator.dtype)
    return float(theta @ operator.matvec(theta))


def scale_invariant_operator(operator: CurvatureOperator, theta: torch.Tensor) -> DiagonalConjugate:
    """``diag(|θ|) H diag(|θ|)``."""
    return DiagonalConjugate(operator, theta.detach().abs())


@dataclass(frozen=True)
class EpsilonSharpness:
    """Keskar et al. (2017) sharpness: ``100 · (L_max − L) / (1 + L)`` (percent).

    ``L_max`` is the largest loss found by projected sign-gradient ascent in the L∞ box
    ``|δ_i| <= ε(|θ_i| + offset)``: a lower bound on the true maximum over the box.
    """

    loss: float
    max_loss: float
    relative_increase_percent: float
    epsilon: float
    offset: float
    steps: int
    seed: int


def epsilon_sharpness(
    loss: Callable[[torch.Tensor], torch.Tensor],
    theta: torch.Tensor,
    *,
    epsilon: float = 1e-3,
    offset: float = 1.0,
    steps: int = 20,
    step_fraction: float | None = None,
    random_start: bool = True,
    seed: int = 0,
) -> EpsilonSharpness:
    """ε-sharpness of ``loss`` around ``theta`` (flat ``(P,)``).

    Args:
        loss: scalar function of a flat parameter vector (e.g. :meth:`EmpiricalRisk.loss_at`), differentiable.
        epsilon: box size relative to ``|θ_i| + offset`` (Keskar et al. use 1e-3 and 5e-4).
        offset: 1 as in Keskar et al.; 0 makes the box, hence the measure, α-rescaling invariant.
        steps: ascent steps; the loss is evaluated ``steps + 1`` times and the largest value is kept.
        step_fraction: step as a fraction of the box radius, default ``2.5 / steps`` (Madry et al.).
        random_start: start from a seeded uniform point in the box rather than its centre.
    """
    if epsilon <= 0 or offset < 0 or steps < 0:
        raise ValueError(f"need epsilon > 0, offset >= 0, steps >= 0; got {epsilon}, {offset}, {steps}")
    theta = theta.detach()
    radius = epsilon * (theta.abs() + offset)
    fraction = 2.5 / max(steps, 1) if step_fraction is None else step_fraction
    if random_start:
        generator = torch.Generator().manual_seed(seed)
        unit = torch.rand(theta.shape, generator=generator, dtype=torch.float64)
        delta = ((2.0 * unit - 1.0).to(theta) * radius).detach()
    else:
        delta = torch.zeros_like(theta)
    with torch.no_grad():
        base = float(loss(theta))
    best = -float("inf")
    for step in range(steps + 1):
        point = (theta + delta).requires_grad_(step < steps)
        value = loss(point)
        best = max(best, value.item())
        if step == steps:
            break
        (gradient,) = torch.autograd.grad(value, point)
        delta = torch.clamp(delta + fraction * radius * gradient.sign(), -radius, radius).detach()
    return EpsilonSharpness(
        loss=base,
        max_loss=best,
        relative_increase_percent=100.0 * (best - base) / (1.0 + base),
        epsilon=epsilon,
        offset=offset,
        steps=steps,
        seed=seed,
    )


@dataclass(frozen=True)
class SharpnessMeasures:
    """Sharpness of a model at its current parameters (loss units unless stated)."""

    lambda_max: float  # not α-invariant
    trace: float | None  # not α-invariant; None unless a trace estimator was injected
    theta_hessian_theta: float  # θᵀHθ, exactly α-invariant
    scale_invariant_lambda_max: float  # λ_max(diag|θ| H diag|θ|), exactly α-invariant
    epsilon_sharpness: EpsilonSharpness | None  # percent; approximately α-invariant (exactly with offset 0)


def sharpness_measures(
    risk: EmpiricalRisk,
    *,
    hessian: CurvatureOperator | None = None,
    top_eigenvalue: TopEigenvalueFn = local_top_eigenvalue,
    trace: TraceFn | None = None,
    epsilon: float | None = 1e-3,
    offset: float = 1.0,
    steps: int = 20,
    seed: int = 0,
) -> SharpnessMeasures:
    """All measures at the risk's parameters θ, of the risk's objective (its data, weighting and mode).

    ``hessian`` defaults to the risk's :class:`~hessdyn.curvature.HessianOperator`; the analysis passes its
    configured operator (Hessian or GGN), and its eigensolver / trace estimator as ``top_eigenvalue`` /
    ``trace``. ε-sharpness evaluates :meth:`EmpiricalRisk.loss_at`. ``epsilon=None`` skips ε-sharpness.
    """
    operator = HessianOperator(risk) if hessian is None else hessian
    theta = risk.flat_params()
    return SharpnessMeasures(
        lambda_max=float(top_eigenvalue(operator)),
        trace=None if trace is None else float(trace(operator)),
        theta_hessian_theta=quadratic_form(operator, theta),
        scale_invariant_lambda_max=float(top_eigenvalue(scale_invariant_operator(operator, theta))),
        epsilon_sharpness=None
        if epsilon is None
        else epsilon_sharpness(risk.loss_at, theta, epsilon=epsilon, offset=offset, steps=steps, seed=seed),
    )
