"""The double-backward Hessian operator of a flat loss."""

from __future__ import annotations

import pytest
import torch

from hessdyn.curvature import CurvatureOperator
from hessdyn.reparam import FlatLoss


def test_loss_hessian_matches_autograd_hessian_over_several_batches(two_layer, data, dense_hessian):
    x, y = data
    flat = FlatLoss(two_layer, [(x[:10], y[:10]), (x[10:], y[10:])])  # 10 + 14 samples: weights 10/24, 14/24
    expected = dense_hessian(two_layer, x, y)
    operator = flat.hessian()
    assert isinstance(operator, CurvatureOperator) and operator.size == 38
    assert operator.layout.names == flat.names
    columns = torch.stack([operator.matvec(e) for e in torch.eye(38, dtype=torch.float64)], dim=1)
    torch.testing.assert_close(columns, expected, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(operator.matmat(torch.eye(38, dtype=torch.float64)), columns, rtol=0, atol=0)
    with torch.no_grad():
        whole = torch.nn.functional.cross_entropy(two_layer(x), y).item()
        assert flat(flat.theta).item() == pytest.approx(whole, rel=1e-13)
