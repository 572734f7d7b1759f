"""Random and architecture-induced IPR null models."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate

from hessdyn.trajectory import architecture_ipr_null, expected_random_ipr, random_ipr_null


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
    assert np.mean(null.table()["ipr_normalized"]) == pytest.approx(size / (size + 2), rel=0.02)


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


def test_architecture_null_summarizes_per_rank_and_overall():
    size = 8
    e = torch.eye(size, dtype=torch.float64)
    uniform = torch.full((size,), size**-0.5, dtype=torch.float64)
    half = torch.zeros(size, dtype=torch.float64)
    half[:2] = 2**-0.5
    blocks = [torch.stack([e[0], uniform]), torch.stack([half, uniform]), torch.stack([e[3]])]
    null = architecture_ipr_null(blocks, seeds=[11, 12, 13])
    np.testing.assert_allclose(null.ipr[:, 0], [1.0, 0.5, 1.0])
    np.testing.assert_allclose(null.ipr[:2, 1], [1 / size, 1 / size])
    assert math.isnan(null.ipr[2, 1])
    per_rank = null.per_rank
    assert per_rank.loc[0, "mean"] == pytest.approx(2.5 / 3)
    assert per_rank.loc[0, "std"] == pytest.approx(np.std([1.0, 0.5, 1.0], ddof=1))
    assert per_rank.loc[1, "count"] == 2
    assert null.overall.count == 5
    assert null.overall.mean == pytest.approx((2.5 + 2 / size) / 5)
    assert null.overall.q975 == pytest.approx(np.quantile([1, 0.5, 1, 1 / size, 1 / size], 0.975))
    table = null.table()
    assert len(table) == 5 and set(table["seed"]) == {11, 12, 13}
    assert table["ipr_normalized"].max() == pytest.approx(size / 3)
