"""Random and architecture-induced IPR null models."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate

from hessdyn.trajectory import expected_random_ipr, random_ipr_null


def test_expected_ipr_matches_independent_low_dimensional_integrals():
    # P = 2: u = (cos φ, sin φ), φ uniform
    p2, _ = integrate.quad(
        lambda phi: (math.cos(phi) ** 4 + math.sin(phi) ** 4) / (2 * math.pi), 0, 2 * math.pi
    )
    # P = 3: each coordinate of a uniform point on S² is uniform on [-1, 1] (Archimedes), E[u_z⁴] = 1/5
    p3 = 3 * integrate.quad(lambda z: z**4 / 2, -1, 1)[0]
    assert expected_random_ipr(2) == pytest.approx(p2, rel=1e-12)
    assert expected_random_ipr(3) == pytest.approx(p3, rel=1e-12)


@pytest.mark.parametrize("size", [5, 60, 1000])
def test_random_null_mean_matches_three_over_p_plus_two(size):
    null = random_ipr_null(size, num_samples=20000, seed=1)
    assert null.expected == 3 / (size + 2)
    assert abs(null.summary.mean - null.expected) < 4 * null.standard_error
    assert null.summary.q025 < null.summary.median < null.summary.q975
    # the normalized IPR P·IPR/3 of random vectors sits near P/(P+2) -> 1
    assert np.mean(size * null.samples / 3) == pytest.approx(size / (size + 2), rel=0.02)


def test_random_null_is_seeded_and_chunking_does_not_matter():
    a = random_ipr_null(300, num_samples=50, seed=7)
    b = random_ipr_null(300, num_samples=50, seed=7)
    c = random_ipr_null(300, num_samples=50, seed=8)
    np.testing.assert_array_equal(a.samples, b.samples)
    assert not np.array_equal(a.samples, c.samples)
    generator = torch.Generator().manual_seed(7)
    direct = torch.randn(50, 300, generator=generator, dtype=torch.float64)
    direct = direct / direct.norm(dim=1, keepdim=True)
    np.testing.assert_allclose(a.samples, (direct**4).sum(dim=1).numpy(), rtol=1e-12)
