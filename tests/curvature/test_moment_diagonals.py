"""Exact diagonals and traces of M and C against dense per-example gradients; Bekas et al.'s stochastic
diagonal against hand-built matrices."""

import math

import pytest
import torch

from hessdyn.curvature import (
    CovarianceOperator,
    EmpiricalRisk,
    HessianMode,
    MatrixOperator,
    PerSampleGradientsUndefined,
    gradient_moment_diagonals,
)
from hessdyn.solvers import bekas_diagonal, hutchinson

from .cases import BN, CONV_BN, MLPS, data, image_data, reference_per_example_gradients, spectrum_matrix
from .test_gradient_moments import reference_moments, uneven_weights


@pytest.mark.parametrize("chunk_size", [None, 1, 5])
@pytest.mark.parametrize("case", [MLPS[0], CONV_BN], ids=lambda c: c.name)
def test_exact_diagonals_and_traces(case, chunk_size):
    model = case.build()
    x, y = image_data() if case is CONV_BN else data()
    w = uneven_weights(x.shape[0])
    M, C, mean = reference_moments(reference_per_example_gradients(model, x, y), w)
    result = gradient_moment_diagonals(EmpiricalRisk(model, x, y, sample_weights=w, batch_size=7), chunk_size)
    scale = float(M.diagonal().max())
    torch.testing.assert_close(result.second_moment, M.diagonal(), rtol=0, atol=1e-12 * scale)
    torch.testing.assert_close(result.covariance, C.diagonal(), rtol=0, atol=1e-12 * scale)
    torch.testing.assert_close(result.mean_gradient, mean, rtol=0, atol=1e-12 * float(mean.abs().max()))
    assert result.second_moment_trace == pytest.approx(float(torch.trace(M)), rel=1e-12)
    assert result.covariance_trace == pytest.approx(float(torch.trace(C)), rel=1e-12)
    assert result.num_examples == x.shape[0]


def test_a_huge_weight_decay_shift_leaves_the_covariance_diagonal_exact():
    """Every gradient shifted by ~3e5: adding the shift before centring would cost diag(C) ~8 digits."""
    model = MLPS[1].build()
    x, y = data()
    plain = gradient_moment_diagonals(EmpiricalRisk(model, x, y), chunk_size=5)
    shifted = gradient_moment_diagonals(EmpiricalRisk(model, x, y, mode=HessianMode(weight_decay=1e6)), 5)
    torch.testing.assert_close(shifted.covariance, plain.covariance, rtol=0, atol=0)
    assert float(shifted.mean_gradient.abs().max()) > 1e5


def test_diagonals_with_weight_decay():
    model = MLPS[1].build()
    x, y = data()
    risk = EmpiricalRisk(model, x, y, mode=HessianMode(weight_decay=0.2))
    shift = 0.2 * risk.flat_params()
    M, C, _ = reference_moments(
        reference_per_example_gradients(model, x, y), risk.example_weights(risk.batches[0]), shift
    )
    result = gradient_moment_diagonals(risk)
    torch.testing.assert_close(result.second_moment, M.diagonal(), rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(result.covariance, C.diagonal(), rtol=1e-9, atol=1e-15)


def test_refused_for_batchnorm_on_batch_statistics():
    x, y = data()
    with pytest.raises(PerSampleGradientsUndefined, match="analysis.batchnorm"):
        gradient_moment_diagonals(EmpiricalRisk(BN.build(), x, y, mode=HessianMode(batchnorm="train")))


def test_bekas_is_exact_on_a_diagonal_matrix():
    d = torch.linspace(-2.0, 5.0, 30, dtype=torch.float64)
    result = bekas_diagonal(MatrixOperator(torch.diag(d)), num_probes=4)
    torch.testing.assert_close(result.diagonal, d, rtol=0, atol=1e-14)
    assert float(result.standard_error.max()) < 1e-14
    assert result.num_hvps == 4


def test_bekas_standard_error_matches_the_exact_variance():
    """Per probe, Var[(z ⊙ A z)_i] = Σ_{j≠i} A_ij²; the reported SE must match sqrt(that / K)."""
    A, _ = spectrum_matrix(torch.linspace(0.1, 3.0, 40, dtype=torch.float64), seed=2)
    K = 4000
    result = bekas_diagonal(MatrixOperator(A), num_probes=K, seed=1, block_size=500)
    exact_se = ((A.pow(2).sum(1) - A.diagonal().pow(2)) / K).sqrt()
    torch.testing.assert_close(result.standard_error, exact_se, rtol=0.1, atol=0)
    z = (result.diagonal - A.diagonal()) / exact_se
    assert float(z.abs().max()) < 4.5
    assert abs(float(z.mean())) < 4 / math.sqrt(40)


def test_bekas_sums_to_the_hutchinson_trace_and_ignores_block_size():
    A, _ = spectrum_matrix(torch.linspace(-1.0, 2.0, 25, dtype=torch.float64), seed=3)
    op = MatrixOperator(A)
    a = bekas_diagonal(op, num_probes=30, seed=5, block_size=7)
    b = bekas_diagonal(op, num_probes=30, seed=5, block_size=30)
    torch.testing.assert_close(a.diagonal, b.diagonal, rtol=0, atol=1e-13)
    torch.testing.assert_close(a.standard_error, b.standard_error, rtol=1e-10, atol=1e-14)
    hutch = hutchinson(op, 30, seed=5)
    assert float(a.diagonal.sum()) == pytest.approx(hutch.trace, rel=1e-12)
    assert a.trace == pytest.approx(hutch.trace, rel=1e-12)
    assert a.trace_se == pytest.approx(hutch.trace_se, rel=1e-10)
    assert b.trace_se == pytest.approx(hutch.trace_se, rel=1e-10)


def test_bekas_on_the_covariance_operator_brackets_the_exact_diagonal():
    model = MLPS[0].build()
    x, y = data()
    risk = EmpiricalRisk(model, x, y)
    exact = gradient_moment_diagonals(risk).covariance
    result = bekas_diagonal(CovarianceOperator(risk), num_probes=200, seed=0, block_size=50)
    z = (result.diagonal - exact) / result.standard_error
    assert float((z.abs() < 3).double().mean()) > 0.95


def test_bekas_needs_two_probes():
    with pytest.raises(ValueError, match="num_probes"):
        bekas_diagonal(MatrixOperator(torch.eye(3, dtype=torch.float64)), num_probes=1)
