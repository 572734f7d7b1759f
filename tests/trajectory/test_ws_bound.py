"""Wolkowicz–Styan bounds: inequalities, equality cases, and the uncertainty of stochastic estimates."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hessdyn.trajectory import (
    ws_bound_from_eigenvalues,
    ws_bound_from_estimates,
    ws_bound_from_matrix,
    ws_bound_from_traces,
)


def _random_symmetric(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    a = rng.standard_normal((n, n))
    if kind == "psd":
        return a @ a.T
    if kind == "low_rank_psd":
        b = rng.standard_normal((n, max(1, n // 5)))
        return b @ b.T
    if kind == "negative_definite":
        return -(a @ a.T) - np.eye(n)
    return a + a.T  # indefinite


@pytest.mark.parametrize("kind", ["psd", "low_rank_psd", "negative_definite", "indefinite"])
def test_bounds_bracket_lambda_max_on_random_symmetric_matrices(kind):
    rng = np.random.default_rng(0)
    for seed in range(50):
        n = int(rng.integers(2, 40))
        matrix = _random_symmetric(kind, n, np.random.default_rng(seed))
        lambda_max = np.linalg.eigvalsh(matrix)[-1]
        bound = ws_bound_from_matrix(matrix)
        scale = 1e-10 * max(1.0, abs(lambda_max))
        assert bound.lower <= lambda_max + scale
        assert lambda_max <= bound.upper + scale
        from_spectrum = ws_bound_from_eigenvalues(np.linalg.eigvalsh(matrix))
        assert from_spectrum.upper == pytest.approx(bound.upper, rel=1e-9, abs=1e-9)


def test_upper_bound_is_attained_by_a_rank_one_matrix():
    # λ = (c, 0, …, 0): μ = c/n, s = c·sqrt(n−1)/n, μ + s·sqrt(n−1) = c
    rng = np.random.default_rng(1)
    u = rng.standard_normal(30)
    u /= np.linalg.norm(u)
    bound = ws_bound_from_matrix(4.5 * np.outer(u, u))
    assert bound.upper == pytest.approx(4.5, rel=1e-12)
    assert bound.lower < 4.5
    # shifted by a multiple of the identity the other n−1 eigenvalues stay equal: still tight
    assert ws_bound_from_matrix(4.5 * np.outer(u, u) - 2 * np.eye(30)).upper == pytest.approx(2.5, rel=1e-12)


def test_lower_bound_is_attained_when_the_top_n_minus_one_eigenvalues_are_equal():
    bound = ws_bound_from_eigenvalues(np.array([3.0] * 9 + [-1.0]))
    assert bound.lower == pytest.approx(3.0, rel=1e-12)
    assert bound.upper > 3.0


def test_values_from_traces_by_hand():
    # spectrum (4, 1, 1): μ = 2, s² = 18/3 − 4 = 2
    bound = ws_bound_from_traces(6.0, 18.0, 3)
    assert (bound.mean, bound.std) == (pytest.approx(2.0), pytest.approx(math.sqrt(2)))
    assert bound.upper == pytest.approx(2 + math.sqrt(2) * math.sqrt(2))
    assert bound.lower == pytest.approx(2 + math.sqrt(2) / math.sqrt(2))
    assert not bound.variance_clipped


def test_negative_variance_estimate_is_clipped_and_flagged():
    assert not ws_bound_from_traces(10.0, 20.0, 10).variance_clipped  # s² = 2 − 1
    clipped = ws_bound_from_traces(10.0, 5.0, 10)  # s² = 0.5 − 1 < 0, impossible for exact traces
    assert clipped.variance_clipped and clipped.std == 0.0
    assert clipped.upper == clipped.lower == pytest.approx(1.0)
    estimate = ws_bound_from_estimates(10.0, 5.0, 10, trace_se=0.1, trace_sq_se=0.1)
    assert estimate.point.variance_clipped and math.isnan(estimate.upper_se)


def test_delta_method_matches_monte_carlo_spread():
    n, trace, trace_sq = 1000, 50.0, 400.0
    trace_se, trace_sq_se = 0.5, 4.0
    estimate = ws_bound_from_estimates(trace, trace_sq, n, trace_se=trace_se, trace_sq_se=trace_sq_se)
    rng = np.random.default_rng(2)
    traces = trace + trace_se * rng.standard_normal(200_000)
    traces_sq = trace_sq + trace_sq_se * rng.standard_normal(200_000)
    means = traces / n
    uppers = means + np.sqrt(traces_sq / n - means**2) * math.sqrt(n - 1)
    lowers = means + np.sqrt(traces_sq / n - means**2) / math.sqrt(n - 1)
    assert estimate.upper_se == pytest.approx(np.std(uppers), rel=0.03)
    assert estimate.lower_se == pytest.approx(np.std(lowers), rel=0.03)


def test_correlated_estimates_change_the_delta_method_variance():
    kwargs = dict(trace=50.0, trace_sq=400.0, size=1000, trace_se=0.5, trace_sq_se=4.0)
    independent = ws_bound_from_estimates(**kwargs)
    correlated = ws_bound_from_estimates(**kwargs, covariance=0.9 * 0.5 * 4.0)
    # ∂upper/∂tr < 0 here (μ/s > 1/sqrt(n−1)) and ∂upper/∂tr² > 0: positive covariance reduces the variance
    assert correlated.upper_se < independent.upper_se


@pytest.mark.parametrize(
    ("trace", "trace_sq"),
    [
        (30.0, 60.0),  # extremes on the corners of the box
        (30.0, 900.0),  # the upper bound's maximizer tr* = sqrt(tr²) = 30 lies inside
        (210.0, 900.0),  # the lower bound's maximizer sqrt(tr²(n−1)) = 210 and the kink sqrt(n·tr²) ≈ 212
    ],
)
def test_conservative_interval_is_the_range_over_the_box(trace, trace_sq):
    n, z = 50, 2.0
    trace_se, trace_sq_se = 0.1 * trace, 0.1 * trace_sq
    estimate = ws_bound_from_estimates(trace, trace_sq, n, trace_se=trace_se, trace_sq_se=trace_sq_se, z=z)
    grid_t = np.linspace(trace - z * trace_se, trace + z * trace_se, 40001)
    grid_q = np.linspace(trace_sq - z * trace_sq_se, trace_sq + z * trace_sq_se, 41)
    t, q = np.meshgrid(grid_t, grid_q)
    mean = t / n
    spread = np.sqrt(np.maximum(q / n - mean**2, 0.0))
    point = ws_bound_from_traces(trace, trace_sq, n)
    for interval, c, value in [
        (estimate.upper_interval, math.sqrt(n - 1), point.upper),
        (estimate.lower_interval, 1 / math.sqrt(n - 1), point.lower),
    ]:
        values = mean + c * spread
        assert interval.low == pytest.approx(values.min(), rel=1e-4)
        assert interval.high == pytest.approx(values.max(), rel=1e-6)
        assert interval.low <= value <= interval.high
