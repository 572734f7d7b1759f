"""Device placement: operators, probes, checksums and a one-rank process group on an accelerator agree
with the CPU. They run on CUDA when a GPU is visible and skip otherwise (CI has none);
HESSDYN_TEST_DEVICE=cpu runs them on the CPU instead (scripts/device_check.sh --cpu-dry-run does), so the
code is exercised everywhere and the comparison itself is known to work."""

from __future__ import annotations

import os

import pytest
import torch

from hessdyn.curvature import (
    DistributedOperator,
    EmpiricalRisk,
    HessianSet,
    curvature_operator,
)
from hessdyn.curvature.distributed import bit_checksum
from hessdyn.parallel import init_distributed, shutdown
from hessdyn.solvers import eigsh_topk, hutch_plus_plus

from .cases import CONV_CASE, MLP_CASE
from .launcher import free_port

DEVICE = os.environ.get("HESSDYN_TEST_DEVICE", "cuda")
pytestmark = pytest.mark.skipif(
    DEVICE == "cuda" and not torch.cuda.is_available(),
    reason="no CUDA device visible (set HESSDYN_TEST_DEVICE=cpu to run these on the CPU)",
)
LAUNCH_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def on_device(case) -> tuple[torch.nn.Module, HessianSet]:
    model, hset = case.build(), case.data()
    return model.to(DEVICE), HessianSet(hset.x.to(DEVICE), hset.y.to(DEVICE), hset.indices)


def rel(a: torch.Tensor | float, b: torch.Tensor | float) -> float:
    a, b = torch.as_tensor(a).double().cpu(), torch.as_tensor(b).double().cpu()
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("case", [MLP_CASE, CONV_CASE], ids=lambda c: c.name)
def test_float64_results_on_the_device_equal_the_cpu(case):
    ref_model, ref_set = case.build(), case.data()
    ref = curvature_operator(ref_model, ref_set.x, ref_set.y, mode=case.mode)
    model, hset = on_device(case)
    op = curvature_operator(model, hset.x, hset.y, mode=case.mode)
    assert op.device.type == torch.device(DEVICE).type
    a, b = eigsh_topk(op, case.k, tol=1e-10, seed=3), eigsh_topk(ref, case.k, tol=1e-10, seed=3)
    assert a.eigenvectors.device.type == torch.device(DEVICE).type
    assert rel(a.eigenvalues, b.eigenvalues) < 1e-10
    # Hutch++ draws its probes on the CPU and moves them: the same probes on every device
    assert rel(hutch_plus_plus(op, 30, seed=5).trace, hutch_plus_plus(ref, 30, seed=5).trace) < 1e-10
    lg = EmpiricalRisk(model, hset.x, hset.y, mode=case.mode).loss_and_gradient()
    ref_lg = EmpiricalRisk(ref_model, ref_set.x, ref_set.y, mode=case.mode).loss_and_gradient()
    assert lg.gradient.device.type == torch.device(DEVICE).type
    assert rel(lg.gradient, ref_lg.gradient) < 1e-12


def test_float32_on_the_device_is_close_to_float64():
    model, hset = on_device(MLP_CASE)
    op32 = curvature_operator(model, hset.x, hset.y, mode=MLP_CASE.mode, dtype=torch.float32)
    ref_set = MLP_CASE.data()
    ref = curvature_operator(MLP_CASE.build(), ref_set.x, ref_set.y, mode=MLP_CASE.mode)
    a = eigsh_topk(op32, MLP_CASE.k, tol=1e-4, seed=3)
    b = eigsh_topk(ref, MLP_CASE.k, tol=1e-10, seed=3)
    assert rel(a.eigenvalues, b.eigenvalues) < 1e-4


def test_checksums_do_not_depend_on_the_device():
    t = torch.randn(5000, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.equal(bit_checksum(t.to(DEVICE)).cpu(), bit_checksum(t))
    assert torch.equal(bit_checksum(t.float().to(DEVICE)).cpu(), bit_checksum(t.float()))


def test_one_rank_on_the_device_uses_its_backend_and_equals_the_plain_operator(monkeypatch):
    for key in LAUNCH_ENV:
        monkeypatch.delenv(key, raising=False)
    env = {"RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    ctx = init_distributed(DEVICE, timeout_s=60)
    try:
        assert ctx.device.type == torch.device(DEVICE).type
        assert ctx.backend == ("nccl" if ctx.device.type == "cuda" else "gloo")
        model, hset = on_device(MLP_CASE)
        op = ctx.curvature_operator(model, hset, mode=MLP_CASE.mode)
        assert isinstance(op, DistributedOperator)
        plain = curvature_operator(model, hset.x, hset.y, mode=MLP_CASE.mode)
        a, b = eigsh_topk(op, MLP_CASE.k, tol=1e-10, seed=3), eigsh_topk(plain, MLP_CASE.k, tol=1e-10, seed=3)
        assert torch.equal(a.eigenvalues, b.eigenvalues)  # share 1, one rank: the very same bits
        lg = ctx.risk(model, hset, mode=MLP_CASE.mode).loss_and_gradient()
        assert lg.gradient.device.type == ctx.device.type
    finally:
        shutdown(ctx)
