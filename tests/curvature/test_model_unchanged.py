"""No curvature call may change the caller's model: values, buffers, train/eval flags, requires_grad, .grad."""

import pytest
import torch

from hessdyn.curvature import HessianMode, cast_model, curvature_operator, dense_matrix, flat_gradient
from hessdyn.solvers import eigsh_topk, hutch_plus_plus, spectral_density

from .cases import ALL, BN, assert_unchanged, data, snapshot


@pytest.mark.parametrize("batchnorm", ["eval", "train"])
@pytest.mark.parametrize("curvature", ["hessian", "ggn"])
@pytest.mark.parametrize("case", ALL, ids=lambda c: c.name)
def test_model_is_bitwise_unchanged(case, curvature, batchnorm):
    model = case.build()
    if case.name == "relu":
        model.eval()  # both flag states must survive
    model[0].bias.requires_grad_(False) if isinstance(model, torch.nn.Sequential) else None
    x, y = data()
    before = snapshot(model)
    op = curvature_operator(
        model, x, y, curvature=curvature, mode=HessianMode(batchnorm=batchnorm), batch_size=10
    )
    op.matvec(torch.ones(op.size, dtype=torch.float64))
    dense_matrix(op)
    eigsh_topk(op, 2, tol=1e-6)
    hutch_plus_plus(op, 12)
    spectral_density(op, 2, 5)
    flat_gradient(model, x, y, mode=HessianMode(batchnorm=batchnorm, weight_decay=0.1))
    cast_model(model, torch.float32)
    assert_unchanged(model, before)


def test_frozen_parameters_are_left_out_and_stay_frozen():
    model = BN.build()
    model[1].weight.requires_grad_(False)
    x, y = data()
    op = curvature_operator(model, x, y)
    assert "1.weight" not in op.layout.names and "1.bias" in op.layout.names
    assert not model[1].weight.requires_grad


def test_batchnorm_running_statistics_untouched_in_train_mode():
    model = BN.build()
    x, y = data()
    mean, var, count = (
        model[1].running_mean.clone(),
        model[1].running_var.clone(),
        model[1].num_batches_tracked.clone(),
    )
    op = curvature_operator(model, x, y, mode=HessianMode(batchnorm="train"))
    for _ in range(3):
        op.matvec(torch.ones(op.size, dtype=torch.float64))
    bn_copy = [m for m in op.risk.module.modules() if isinstance(m, torch.nn.BatchNorm1d)][0]
    assert torch.equal(model[1].running_mean, mean) and torch.equal(model[1].running_var, var)
    assert torch.equal(model[1].num_batches_tracked, count)
    assert torch.equal(bn_copy.running_mean, mean)  # the private copy is not updated either
