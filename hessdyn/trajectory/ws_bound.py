"""Wolkowicz–Styan (1980) bounds on the largest eigenvalue from ``tr(H)`` and ``tr(H²)`` alone.

For a symmetric ``n × n`` matrix with ``μ = tr(H)/n`` and ``s² = tr(H²)/n − μ²`` (the population variance
of the eigenvalues),

    μ + s / sqrt(n − 1)  <=  λ_max  <=  μ + s · sqrt(n − 1).

Upper: with ``x_i = λ_i − μ``, ``Σx_i = 0`` and ``Σx_i² = n s²``; Cauchy–Schwarz on ``x_1 = −Σ_{i≥2} x_i``
gives ``x_1² ≤ (n − 1)(n s² − x_1²)``, i.e. ``x_1 ≤ s sqrt(n − 1)``, with equality iff the other ``n − 1``
eigenvalues are equal (e.g. ``c·uuᵀ`` with ``c > 0``). Lower: equality iff the ``n − 1`` largest eigenvalues
are equal (e.g. ``I − uuᵀ``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hessdyn.trajectory._blocks import ArrayLike, as_float64, to_numpy


@dataclass(frozen=True)
class WolkowiczStyanBound:
    """``lower <= λ_max <= upper`` for an ``n × n`` symmetric matrix; ``mean`` = μ, ``std`` = s (eigenvalue
    units). ``variance_clipped`` is True when ``s²`` came out negative (inconsistent estimates) and was set to 0."""

    upper: float
    lower: float
    mean: float
    std: float
    size: int
    variance_clipped: bool


def ws_bound_from_traces(trace: float, trace_sq: float, size: int) -> WolkowiczStyanBound:
    """Bounds from ``tr(H)``, ``tr(H²) = ||H||_F²`` and ``n = P``."""
    if size < 2:
        raise ValueError(f"the bounds need n >= 2, got {size}")
    mean = trace / size
    variance = trace_sq / size - mean**2
    std = math.sqrt(max(variance, 0.0))
    return WolkowiczStyanBound(
        upper=mean + std * math.sqrt(size - 1),
        lower=mean + std / math.sqrt(size - 1),
        mean=mean,
        std=std,
        size=size,
        variance_clipped=variance < 0,
    )


def ws_bound_from_eigenvalues(eigenvalues: ArrayLike) -> WolkowiczStyanBound:
    """Bounds from a full spectrum ``(n,)`` (exact traces)."""
    values = to_numpy(as_float64(eigenvalues)).reshape(-1)
    return ws_bound_from_traces(float(values.sum()), float((values**2).sum()), values.shape[0])


def ws_bound_from_matrix(matrix: ArrayLike) -> WolkowiczStyanBound:
    """Bounds from a dense symmetric ``(n, n)`` matrix via its trace and Frobenius norm."""
    dense = to_numpy(as_float64(matrix))
    if dense.ndim != 2 or dense.shape[0] != dense.shape[1]:
        raise ValueError(f"expected a square matrix, got shape {dense.shape}")
    return ws_bound_from_traces(float(np.trace(dense)), float(np.sum(dense * dense)), dense.shape[0])


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


@dataclass(frozen=True)
class WolkowiczStyanEstimate:
    """Bounds from stochastic estimates of ``tr(H)`` and ``tr(H²)`` with their uncertainty.

    ``upper_se`` / ``lower_se``: first-order (delta-method) standard errors; NaN when ``s = 0``, where the
    bound is not differentiable. They assume ``s`` is well resolved (``s² ≫`` its own standard error).
    ``upper_interval`` / ``lower_interval``: conservative ranges of each bound over the box
    ``[tr ± z·se] × [tr² ± z·se]`` (``tr²`` floored at 0). If each marginal interval covers its trace with
    probability ``1 − a``, the box (hence the range) covers with probability at least ``1 − 2a`` (Bonferroni),
    whatever the correlation. Neither accounts for the slack between the bound and ``λ_max`` itself.
    """

    point: WolkowiczStyanBound
    upper_se: float
    lower_se: float
    upper_interval: Interval
    lower_interval: Interval
    z: float


def ws_bound_from_estimates(
    trace: float,
    trace_sq: float,
    size: int,
    *,
    trace_se: float,
    trace_sq_se: float,
    covariance: float = 0.0,
    z: float = 1.96,
) -> WolkowiczStyanEstimate:
    """Wolkowicz–Styan bounds with uncertainty from estimates ``tr(H) ± trace_se``, ``tr(H²) ± trace_sq_se``.

    ``covariance`` is the covariance of the two estimators (nonzero when both come from the same probe
    vectors); it enters the delta-method standard errors only.
    """
    if trace_se < 0 or trace_sq_se < 0:
        raise ValueError(f"standard errors must be non-negative, got {trace_se}, {trace_sq_se}")
    point = ws_bound_from_traces(trace, trace_sq, size)
    return WolkowiczStyanEstimate(
        point=point,
        upper_se=_delta_se(point, math.sqrt(size - 1), trace_se, trace_sq_se, covariance),
        lower_se=_delta_se(point, 1.0 / math.sqrt(size - 1), trace_se, trace_sq_se, covariance),
        upper_interval=_box_range(trace, trace_sq, size, math.sqrt(size - 1), z * trace_se, z * trace_sq_se),
        lower_interval=_box_range(
            trace, trace_sq, size, 1.0 / math.sqrt(size - 1), z * trace_se, z * trace_sq_se
        ),
        z=z,
    )


def _bound(trace: float, trace_sq: float, size: int, c: float) -> float:
    """``f_c = μ + c·s`` with ``s²`` clipped at 0 (c = sqrt(n−1): upper, 1/sqrt(n−1): lower)."""
    mean = trace / size
    return mean + c * math.sqrt(max(trace_sq / size - mean**2, 0.0))


def _delta_se(point: WolkowiczStyanBound, c: float, trace_se: float, trace_sq_se: float, cov: float) -> float:
    if point.std == 0.0:
        return math.nan
    n = point.size
    d_trace = (1.0 - c * point.mean / point.std) / n  # ∂f/∂tr(H)
    d_trace_sq = c / (2.0 * n * point.std)  # ∂f/∂tr(H²)
    variance = d_trace**2 * trace_se**2 + d_trace_sq**2 * trace_sq_se**2 + 2 * d_trace * d_trace_sq * cov
    return math.sqrt(max(variance, 0.0))


def _box_range(trace: float, trace_sq: float, size: int, c: float, half_t: float, half_q: float) -> Interval:
    """Range of ``f_c`` over a box. ``f_c`` is non-decreasing in ``tr(H²)``, so the extremes sit on the
    low / high ``tr(H²)`` edges; along ``tr(H)`` it is concave where ``s² > 0``, linear where clipped, so the
    candidates are the edge ends, the kinks ``tr = ±sqrt(n·tr²)`` and the maximizer
    ``tr* = n·sqrt(tr² / (n(1 + c²)))``."""
    t_low, t_high = trace - half_t, trace + half_t
    q_low, q_high = max(trace_sq - half_q, 0.0), max(trace_sq + half_q, 0.0)

    def candidates(q: float) -> list[float]:
        kink = math.sqrt(size * q)
        stationary = size * math.sqrt(q / (size * (1.0 + c * c)))
        inside = [t for t in (kink, -kink, stationary) if t_low <= t <= t_high]
        return [t_low, t_high, *inside]

    low = min(_bound(t, q_low, size, c) for t in candidates(q_low))
    high = max(_bound(t, q_high, size, c) for t in candidates(q_high))
    return Interval(low, high)
