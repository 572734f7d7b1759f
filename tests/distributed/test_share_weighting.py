"""The contract the distributed operator relies on: for an operator with `mean_over_examples`, the
share-weighted sum of the shards' matrices is the whole set's matrix, checked on dense matrices (no
process group), with uneven shards, weight decay, and batch norm in both modes."""

import pytest
import torch

from hessdyn.curvature import (
    CovarianceOperator,
    DiagonalConjugate,
    EmpiricalRisk,
    HessianMode,
    MatrixOperator,
    SecondMomentOperator,
    curvature_operator,
    dense_matrix,
    select_hessian_set,
    shard_hessian_set,
)

from ..curvature.cases import BN, MLPS, data, reference_gradient


def _sharded_sum(build, hset, world, batch_size=None):
    total = None
    for r in range(world):
        shard = shard_hessian_set(hset, r, world, batch_size=batch_size)
        part = shard.share * dense_matrix(build(shard.hessian_set))
        total = part if total is None else total + part
    return total


@pytest.mark.parametrize("world", [2, 3, 5])
@pytest.mark.parametrize("curvature", ["hessian", "ggn"])
def test_shares_of_hessian_and_ggn_add_up_to_the_whole_set(curvature, world):
    model = MLPS[0].build()
    hset = select_hessian_set(*data(n=23), None)
    mode = HessianMode(weight_decay=0.1)  # counted once: the shares sum to 1

    def build(part):
        return curvature_operator(model, part.x, part.y, curvature=curvature, mode=mode)

    full = dense_matrix(build(hset))
    torch.testing.assert_close(_sharded_sum(build, hset, world), full, rtol=0, atol=1e-13)


def test_a_gradient_second_moment_shards_the_same_way():
    model = MLPS[1].build()
    hset = select_hessian_set(*data(n=23), None)

    def build(part):
        return SecondMomentOperator(EmpiricalRisk(model, part.x, part.y))

    # independent reference: one plain autograd gradient per example, stacked (N, P)
    G = torch.stack([reference_gradient(model, hset.x[n : n + 1], hset.y[n : n + 1]) for n in range(23)])
    reference = G.T @ G / G.shape[0]
    torch.testing.assert_close(dense_matrix(build(hset)), reference, rtol=0, atol=1e-13)
    torch.testing.assert_close(_sharded_sum(build, hset, 3), reference, rtol=0, atol=1e-13)


def test_batchnorm_train_needs_batch_aligned_shards():
    """Train-mode batch norm normalizes per batch: batch-aligned shards reproduce the single-process
    matrix, shards cut inside a batch do not (which is why the distributed builder refuses them)."""
    model = BN.build()
    hset = select_hessian_set(*data(n=24), None)
    mode = HessianMode(batchnorm="train")

    def build(part):
        return curvature_operator(model, part.x, part.y, mode=mode, batch_size=5)

    full = dense_matrix(build(hset))
    torch.testing.assert_close(_sharded_sum(build, hset, 3, batch_size=5), full, rtol=0, atol=1e-12)
    assert float((_sharded_sum(build, hset, 3) - full).abs().max()) > 1e-4 * float(full.abs().max())


def test_only_means_over_examples_declare_it():
    model = MLPS[0].build()
    x, y = data()
    assert curvature_operator(model, x, y).mean_over_examples
    assert curvature_operator(model, x, y, curvature="ggn").mean_over_examples
    risk = EmpiricalRisk(model, x, y)
    assert SecondMomentOperator(risk).mean_over_examples
    assert not CovarianceOperator(risk).mean_over_examples  # ḡ is the whole set's
    assert not MatrixOperator(torch.eye(3)).mean_over_examples
    assert not DiagonalConjugate(MatrixOperator(torch.eye(3)), torch.ones(3)).mean_over_examples
