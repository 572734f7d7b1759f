"""The noise metrics on real operators of a tiny MLP against the same quantities from dense matrices."""

import numpy as np
import pytest
import torch

from hessdyn.curvature import CovarianceOperator, EmpiricalRisk, HessianOperator, gradient_moment_diagonals
from hessdyn.solvers import eigsh_topk
from hessdyn.trajectory import (
    commutation,
    compare_subspaces,
    compress_jointly,
    diagonal_power_law,
    noise_fraction_in_subspace,
)

from .cases import MLPS, data, reference_hessian, reference_per_example_gradients
from .test_gradient_moments import reference_moments


def test_noise_metrics_from_operators_equal_dense_computations():
    model = MLPS[2].build()  # softplus: a Hessian with both signs on its diagonal
    x, y = data()
    risk = EmpiricalRisk(model, x, y)
    w = risk.example_weights(risk.batches[0])
    _, C, _ = reference_moments(reference_per_example_gradients(model, x, y), w)
    H = reference_hessian(model, x, y)
    noise, curvature = CovarianceOperator(risk), HessianOperator(risk)
    V_C = eigsh_topk(noise, 3, tol=1e-10).eigenvectors
    V_H = eigsh_topk(curvature, 4, tol=1e-10).eigenvectors
    exact_C = torch.linalg.eigh(C).eigenvectors[:, -3:].T
    exact_H = torch.linalg.eigh(H).eigenvectors[:, -4:].T

    overlap = compare_subspaces(V_C, V_H)
    assert overlap.overlap == pytest.approx(compare_subspaces(exact_C, exact_H).overlap, abs=1e-8)
    assert overlap.random_overlap == pytest.approx(4 / risk.size)

    comp = compress_jointly(noise, curvature, V_C, V_H)
    Q, _ = torch.linalg.qr(torch.cat([exact_H, exact_C]).T)
    dense = commutation(Q.T @ C @ Q, Q.T @ H @ Q).value
    assert commutation(comp.noise, comp.curvature).value == pytest.approx(dense, rel=1e-7)

    trace_C = gradient_moment_diagonals(risk).covariance_trace
    fraction = noise_fraction_in_subspace(comp, V_H, trace_C)
    assert fraction.fraction == pytest.approx(
        float(torch.trace(exact_H @ C @ exact_H.T) / torch.trace(C)), rel=1e-7
    )

    h, c = H.diagonal().numpy(), gradient_moment_diagonals(risk, chunk_size=7).covariance.numpy()
    fit = diagonal_power_law(torch.from_numpy(h), torch.from_numpy(c))
    keep = (h > 0) & (c > 0)
    slope, _ = np.polyfit(np.log(h[keep]), np.log(c[keep]), 1)
    assert fit.gamma == pytest.approx(slope, rel=1e-10)
    assert fit.nonpositive_curvature == int((h <= 0).sum()) > 0
