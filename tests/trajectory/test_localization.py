"""IPR, layer mass and the entries carrying an eigenvector's mass."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hessdyn.trajectory import (
    as_layout,
    ipr,
    layer_mass,
    layout_from_model,
    mass_concentration,
    normalized_ipr,
)


def test_ipr_of_basis_and_uniform_vectors():
    size = 50
    basis = torch.zeros(size, dtype=torch.float64)
    basis[7] = -3.0  # not unit: normalized defensively
    uniform = torch.full((size,), 0.2, dtype=torch.float64)
    values = ipr(torch.stack([basis, uniform]))
    np.testing.assert_allclose(values, [1.0, 1.0 / size], rtol=1e-14)
    np.testing.assert_allclose(normalized_ipr(uniform), [size / size / 3.0], rtol=1e-14)


def test_ipr_of_a_vector_spread_over_m_entries_is_one_over_m():
    v = np.zeros(30)
    v[[1, 4, 9, 22]] = [0.5, -0.5, 0.5, 0.5]
    assert ipr(v)[0] == pytest.approx(0.25, rel=1e-14)
    assert ipr(v.astype(np.float32))[0] == pytest.approx(0.25, rel=1e-6)


def test_layer_mass_sums_to_one_and_splits_by_slices():
    layout = [("w1", (2, 3)), ("b1", 2), ("w2", torch.Size([1, 2]))]  # P = 10
    v = torch.arange(1.0, 11.0, dtype=torch.float64)
    second = torch.zeros(10, dtype=torch.float64)
    second[6:8] = 1.0  # entirely in b1
    result = layer_mass(torch.stack([v, second]), layout)
    squares = v**2 / (v**2).sum()
    expected = [float(squares[:6].sum()), float(squares[6:8].sum()), float(squares[8:].sum())]
    np.testing.assert_allclose(result.mass[0], expected, rtol=1e-14)
    np.testing.assert_allclose(result.mass[1], [0.0, 1.0, 0.0], atol=1e-15)
    np.testing.assert_allclose(result.mass.sum(axis=1), 1.0, rtol=1e-14)
    assert result.names == ("w1", "b1", "w2")


def test_layout_mismatch_and_param_layout_duck_typing():
    with pytest.raises(ValueError, match="P=12"):
        layer_mass(torch.ones(12), [("w", 10)])

    class FakeParamLayout:  # the curvature package's ParamLayout exposes names, slices and shapes
        names = ("b", "a")
        slices = (slice(6, 8), slice(0, 6))
        shapes = ((2,), (2, 3))

    entries = as_layout(FakeParamLayout(), size=8)
    assert [(e.name, e.shape) for e in entries] == [("b", (2,)), ("a", (2, 3))]
    v = torch.zeros(8)
    v[7] = 1.0
    assert layer_mass(v, FakeParamLayout()).mass.tolist() == [[1.0, 0.0]]


def test_mass_concentration_names_owner_and_index():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    layout = layout_from_model(model)  # 0.weight (4,3), 0.bias (4,), 2.weight (2,4), 2.bias (2,)
    size = sum(p.numel() for p in model.parameters())
    v = torch.zeros(size, dtype=torch.float64)
    v[5] = 0.8  # 0.weight[1, 2]
    v[12 + 4 + 6] = -0.5  # 2.weight[1, 2]
    v[size - 1] = 0.3  # 2.bias[1]
    v[0] = 0.1
    result = mass_concentration(v, layout, top_n=3)
    norm_sq = 0.64 + 0.25 + 0.09 + 0.01
    np.testing.assert_array_equal(result.indices, [5, 22, size - 1])
    assert result.params == ("0.weight", "2.weight", "2.bias")
    assert result.multi_indices == ((1, 2), (1, 2), (1,))
    np.testing.assert_allclose(result.values, np.array([0.8, -0.5, 0.3]) / np.sqrt(norm_sq), rtol=1e-14)
    np.testing.assert_allclose(result.mass, np.array([0.64, 0.25, 0.09]) / norm_sq, rtol=1e-14)
    assert result.count_50 == 1  # 0.64 / 0.99 > 0.5
    assert result.count_90 == 3  # (0.64 + 0.25) / 0.99 = 0.899 falls just short of 0.9
    assert np.cumsum(result.mass)[-1] == pytest.approx(0.98 / 0.99)


def test_mass_counts_for_a_uniform_vector():
    result = mass_concentration(torch.ones(20), [("w", 20)])
    assert (result.count_50, result.count_90) == (10, 18)
