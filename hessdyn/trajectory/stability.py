"""Optimizer-aware curvature thresholds (edge of stability).

On a quadratic with curvature λ, an optimizer with learning rate η is stable iff λ is below a threshold:

* gradient descent: ``λ < 2/η`` (equivalently ``ηλ < 2``);
* heavy-ball momentum β (PyTorch SGD ``v ← βv + (1 − d)g, θ ← θ − ηv``): ``λ < (2 + 2β) / (η(1 − d))``,
  from the characteristic polynomial ``x² − (1 + β − η'λ)x + β``;
* Nesterov momentum: ``λ < (2 + 2β) / (η(1 + 2β))`` (Cohen et al. 2021, appendix);
* Adam (Cohen et al. 2022, "Adaptive gradient methods at the edge of stability", arXiv:2207.14484): the
  preconditioned sharpness ``λ_max(P_t⁻¹H) < (2 + 2β1) / ((1 − β1) η)`` (38/η at β1 = 0.9), with
  ``P_t = (1 − β1^t) · diag(sqrt(v̂_t) + ε)`` (:func:`~hessdyn.trajectory.preconditioners.adam_preconditioner`).
  With that ``P_t`` Adam's step is exactly ``θ_t = θ_{t−1} − η P_t⁻¹ m_t``, ``m_t = β1 m_{t−1} + (1 − β1) g_t``;
  writing ``m_t = (1 − β1) b_t`` gives heavy ball ``b_t = β1 b_{t−1} + g_t`` with learning rate
  ``(1 − β1)η`` and momentum β1, whence the threshold (exact for a quadratic and a frozen ``P``). The
  first-moment bias correction sits in ``P_t``, not in the threshold.
  RMSprop without momentum obeys ``2/η`` on its own ``P⁻¹H``; with momentum β, ``(2 + 2β)/η``.

``λ_max(P⁻¹H)`` equals ``λ_max(P^{-1/2} H P^{-1/2})``, a symmetric operator: use
:class:`hessdyn.curvature.DiagonalConjugate` with ``DiagonalPreconditioner.inverse_sqrt()``.
"""

from __future__ import annotations

from dataclasses import dataclass


def sgd_threshold(lr: float) -> float:
    """``2/η``: largest stable curvature for plain gradient descent (units of 1/lr)."""
    _check_lr(lr)
    return 2.0 / lr


def heavy_ball_threshold(lr: float, momentum: float, *, dampening: float = 0.0) -> float:
    """``(2 + 2β) / (η(1 − d))`` for PyTorch SGD with momentum β and dampening d (no Nesterov)."""
    _check_lr(lr)
    _check_beta("momentum", momentum)
    if not 0.0 <= dampening < 1.0:
        raise ValueError(f"dampening must be in [0, 1), got {dampening}")
    return (2.0 + 2.0 * momentum) / (lr * (1.0 - dampening))


def nesterov_threshold(lr: float, momentum: float) -> float:
    """``(2 + 2β) / (η(1 + 2β))`` for PyTorch SGD with ``nesterov=True``."""
    _check_lr(lr)
    _check_beta("momentum", momentum)
    return (2.0 + 2.0 * momentum) / (lr * (1.0 + 2.0 * momentum))


def adam_threshold(lr: float, beta1: float) -> float:
    """``(2 + 2β1) / ((1 − β1) η)``: threshold on the preconditioned sharpness ``λ_max(P⁻¹H)`` of Adam/AdamW."""
    _check_lr(lr)
    _check_beta("beta1", beta1)
    return (2.0 + 2.0 * beta1) / ((1.0 - beta1) * lr)


@dataclass(frozen=True)
class ThresholdComparison:
    """A curvature against its stability threshold; ``ratio = curvature / threshold`` (1 = edge)."""

    curvature: float
    threshold: float

    @property
    def ratio(self) -> float:
        return self.curvature / self.threshold

    @property
    def exceeds(self) -> bool:
        return self.curvature > self.threshold


def compare_to_threshold(curvature: float, threshold: float) -> ThresholdComparison:
    """E.g. ``compare_to_threshold(lambda_max, sgd_threshold(lr)).ratio`` is ``ηλ_max / 2``."""
    if threshold <= 0:
        raise ValueError(f"threshold must be positive, got {threshold}")
    return ThresholdComparison(float(curvature), float(threshold))


def _check_lr(lr: float) -> None:
    if not lr > 0:
        raise ValueError(f"learning rate must be positive, got {lr}")


def _check_beta(name: str, beta: float) -> None:
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {beta}")
