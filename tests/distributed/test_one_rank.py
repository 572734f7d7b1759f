"""The distributed machinery inside one process (a world of one gloo rank): checksums, the reducer's
checks, refusals with one line, and the launch checks. Two-rank behaviour is in test_two_ranks.py."""

from __future__ import annotations

import pytest
import torch

import hessdyn.curvature.distributed as distributed
from hessdyn.curvature import (
    DistributedOperator,
    EmpiricalRisk,
    HessianMode,
    MatrixOperator,
    curvature_operator,
    distributed_curvature_operator,
    shard_hessian_set,
)
from hessdyn.curvature.distributed import ShardReducer, bit_checksum, collective_failure
from hessdyn.parallel import DistributedContext, LaunchError, init_distributed, shutdown
from hessdyn.parallel.launch import RankFingerprint, check_fingerprints
from hessdyn.solvers import eigsh_topk

from .cases import CONV_CASE, MLP_CASE
from .launcher import free_port

LAUNCH_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@pytest.fixture(scope="module")
def one_rank():
    env = {"RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())}
    with pytest.MonkeyPatch.context() as mp:
        for key in LAUNCH_ENV:
            mp.delenv(key, raising=False)
        for key, value in env.items():
            mp.setenv(key, value)
        ctx = init_distributed("cpu", timeout_s=30)
        yield ctx
        shutdown(ctx)


def test_checksum_sees_one_ulp_and_opposite_changes_and_ignores_chunking(monkeypatch):
    a = torch.randn(1000, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    b = a.clone()
    b[7, 1] = torch.nextafter(b[7, 1], torch.tensor(float("inf"), dtype=torch.float64))
    assert torch.equal(bit_checksum(a), bit_checksum(a.clone()))
    assert not torch.equal(bit_checksum(a)[:1], bit_checksum(b)[:1])
    # two entries whose bit patterns move by +1 and -1: the plain sum cannot tell, the weighted one can
    c = a.clone().view(torch.int64)
    c[3, 0] += 1
    c[900, 2] -= 1
    c = c.view(torch.float64)
    assert torch.equal(bit_checksum(a)[0], bit_checksum(c)[0])
    assert not torch.equal(bit_checksum(a)[1], bit_checksum(c)[1])
    whole = bit_checksum(a)
    monkeypatch.setattr(distributed, "_CHECKSUM_CHUNK", 64)
    assert torch.equal(bit_checksum(a), whole)
    assert bit_checksum(a.float()).dtype == torch.int64


def test_one_rank_is_the_plain_operator_bit_for_bit(one_rank):
    model, hset = MLP_CASE.build(), MLP_CASE.data()
    op = one_rank.curvature_operator(model, hset, mode=MLP_CASE.mode)
    plain = curvature_operator(model, hset.x, hset.y, mode=MLP_CASE.mode)
    assert isinstance(op, DistributedOperator)
    a, b = eigsh_topk(op, 3, seed=1), eigsh_topk(plain, 3, seed=1)
    assert torch.equal(a.eigenvalues, b.eigenvalues) and torch.equal(a.eigenvectors, b.eigenvectors)
    assert op.num_hvps == plain.num_hvps
    t = op.timings()
    assert t.calls == op.num_hvps and t.compute_s > 0 and 0 <= t.communication_share < 1
    lg = one_rank.risk(model, hset, mode=MLP_CASE.mode).loss_and_gradient()
    ref = EmpiricalRisk(model, hset.x, hset.y, mode=MLP_CASE.mode).loss_and_gradient()
    assert lg.loss == pytest.approx(ref.loss, rel=1e-15)
    torch.testing.assert_close(lg.gradient, ref.gradient, rtol=1e-15, atol=0)


def test_shards_that_do_not_add_up_are_refused(one_rank):
    with pytest.raises(ValueError, match=r"the shards hold 5 examples in all, the set 7: every rank must"):
        ShardReducer(5, 7, one_rank.group)


def test_an_operator_that_is_not_a_mean_over_examples_is_refused(one_rank):
    with pytest.raises(TypeError, match=r"^MatrixOperator is not a mean over the examples of its set"):
        DistributedOperator(MatrixOperator(torch.eye(3, dtype=torch.float64)), ShardReducer(1, 1))


def test_batchnorm_train_without_batch_aligned_shards_is_refused():
    shard = shard_hessian_set(CONV_CASE.data(), 1, 2)
    with pytest.raises(ValueError, match=r"^batchnorm=train uses each batch's statistics"):
        distributed_curvature_operator(CONV_CASE.build(), shard, mode=HessianMode(batchnorm="train"))


def test_collective_failures_read_as_one_line():
    exc = RuntimeError(
        "[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:545] Read error "
        "[127.0.0.1]:33714: Connection reset by peer. This is typically caused by a remote worker hanging\nmore"
    )
    assert str(collective_failure(0, 2, "curvature product", exc)) == (
        "rank 0 of 2: a collective failed during a curvature product (another rank died or stopped "
        "responding): Read error [127.0.0.1]:33714: Connection reset by peer"
    )


def test_a_distributed_analysis_outside_a_launch_is_one_line(monkeypatch):
    for key in LAUNCH_ENV:
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(LaunchError, match=r"^a distributed analysis needs a distributed launch \(RANK and"):
        init_distributed("cpu")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(LaunchError, match=r"set RANK but not MASTER_ADDR, MASTER_PORT: use torchrun"):
        init_distributed("cpu")


def test_mismatched_ranks_are_refused_with_one_line():
    ok = RankFingerprint("cpu", "2.4.0", (1, 2), "a")
    check_fingerprints([ok, ok])
    with pytest.raises(
        LaunchError, match=r"different torch versions \(2.4.0 on ranks 0, 2; 2.5.0 on rank 1\)"
    ):
        check_fingerprints([ok, RankFingerprint("cpu", "2.5.0", (1, 2), "a"), ok])
    with pytest.raises(LaunchError, match=r"different numbers from the same seeded generator \(hosts: a on"):
        check_fingerprints([ok, RankFingerprint("cpu", "2.4.0", (1, 3), "b")])


def test_the_single_process_context_is_the_plain_path():
    ctx = DistributedContext.single("cpu")
    model, hset = MLP_CASE.build(), MLP_CASE.data()
    assert ctx.is_writer and not ctx.launched and ctx.world_size == 1
    assert not isinstance(ctx.curvature_operator(model, hset), DistributedOperator)
    assert isinstance(ctx.risk(model, hset), EmpiricalRisk)
    assert ctx.broadcast_object({"steps": [1, 2]}) == {"steps": [1, 2]}
    ctx.barrier()


def test_a_second_start_is_refused_while_the_groups_exist(one_rank):
    with pytest.raises(
        LaunchError, match=r"^torch.distributed is initialized already: leave the process group"
    ):
        init_distributed("cpu")


def test_broadcast_hands_out_rank_0s_object(one_rank):
    assert one_rank.is_writer and one_rank.backend == "gloo"
    assert one_rank.broadcast_object(["step_00000010"]) == ["step_00000010"]
    one_rank.barrier()
