"""Stability thresholds checked by running PyTorch optimizers on one-dimensional quadratics."""

from __future__ import annotations

import pytest
import torch

from hessdyn.trajectory import (
    adam_threshold,
    compare_to_threshold,
    heavy_ball_threshold,
    nesterov_threshold,
    sgd_threshold,
)

X0 = 1e-30  # tiny, so that Adam's |g| stays far below ε in the converging cases
WARMUP = 300


def _growth(make_optimizer, curvature: float, steps: int = 600) -> float:
    """|x_T| / |x_0| for the optimizer on f(x) = curvature·x²/2, in float64.

    The optimizer first takes ``WARMUP`` steps at x = 0 (zero gradient, so nothing moves): that brings
    Adam's bias corrections to ~1 and SGD's momentum buffer to its steady-state update rule, the regime the
    thresholds describe. Early bias-corrected Adam steps are up to 10x larger and transiently unstable.
    """
    x = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = make_optimizer([x])
    for step in range(WARMUP + steps):
        if step == WARMUP:
            with torch.no_grad():
                x.fill_(X0)
        optimizer.zero_grad()
        (0.5 * curvature * x.pow(2).sum()).backward()
        optimizer.step()
    return float(x.detach().abs()) / X0


CASES = [
    ("gd", lambda p: torch.optim.SGD(p, lr=0.1), sgd_threshold(0.1)),
    ("heavy_ball", lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9), heavy_ball_threshold(0.1, 0.9)),
    (
        "dampened",
        lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.5, dampening=0.3),
        heavy_ball_threshold(0.1, 0.5, dampening=0.3),
    ),
    (
        "nesterov",
        lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
        nesterov_threshold(0.1, 0.9),
    ),
    # with ε = 1 ≫ sqrt(v̂) Adam's preconditioner is P ≈ I, so the threshold applies to λ itself
    ("adam", lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.9, 0.999), eps=1.0), adam_threshold(0.01, 0.9)),
]


@pytest.mark.parametrize(("name", "make_optimizer", "threshold"), CASES, ids=[case[0] for case in CASES])
def test_threshold_separates_convergence_from_divergence(name, make_optimizer, threshold):
    assert _growth(make_optimizer, 0.97 * threshold) < 1.0
    assert _growth(make_optimizer, 1.03 * threshold) > 1e10


def test_threshold_values_and_comparison():
    assert sgd_threshold(0.01) == pytest.approx(200.0)
    assert heavy_ball_threshold(0.01, 0.9) == pytest.approx(380.0)
    assert nesterov_threshold(0.01, 0.9) == pytest.approx(380.0 / 2.8)
    assert adam_threshold(1e-3, 0.9) == pytest.approx(38000.0)
    comparison = compare_to_threshold(250.0, sgd_threshold(0.01))
    assert comparison.ratio == pytest.approx(1.25) and comparison.exceeds
    assert 0.01 * 250.0 == pytest.approx(2 * comparison.ratio)  # η·λ_max versus 2
    with pytest.raises(ValueError, match="beta1"):
        adam_threshold(1e-3, 1.0)
