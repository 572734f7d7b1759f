"""One rank of the distributed tests: `python -m tests.distributed._worker SCENARIO OUT_DIR` under torchrun or
with the env:// variables set by the test. Writes OUT_DIR/rank<r>.pt; a failure is printed as one line
"error: ..." on stderr with exit status 1, as the command line does with a user-facing error.

Scenarios: equal (every quantity the tests compare with one process); kill / stall (rank 1 dies or hangs
at its third product of a Lanczos solve); recoverable (rank 1's share raises, is not finite, or its
input is one ulp off, one solve each, then a clean solve: all ranks must fail alike and stay in step);
mixed_device (rank 1 claims CUDA).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import torch

import hessdyn.parallel.launch as launch
from hessdyn.config.errors import HessdynError
from hessdyn.curvature import (
    DistributedOperator,
    EmpiricalRisk,
    HessianMode,
    NonFiniteCurvature,
    RankFailure,
    RanksDiverged,
    SecondMomentOperator,
)
from hessdyn.curvature.distributed import ShardReducer
from hessdyn.parallel import DistributedContext, init_distributed, shutdown
from hessdyn.solvers import eigsh_topk, hutch_plus_plus, spectral_density
from tests.distributed.cases import CASES, MLP_CASE

TIMEOUT_S = float(os.environ.get("HESSDYN_TEST_TIMEOUT_S", "60"))
SABOTAGED_PRODUCT = 3


def probe_block(size: int, m: int = 3) -> torch.Tensor:
    return torch.randn(size, m, generator=torch.Generator().manual_seed(21), dtype=torch.float64)


def case_results(ctx: DistributedContext, name: str) -> dict[str, Any]:
    case = CASES[name]
    model, hset = case.build(), case.data()
    op = ctx.curvature_operator(model, hset, mode=case.mode)
    top = eigsh_topk(op, case.k, tol=1e-10, seed=3)
    tr = hutch_plus_plus(op, 30, seed=5)
    dens = spectral_density(op, 2, 12, seed=7)
    lg = ctx.risk(model, hset, mode=case.mode).loss_and_gradient()
    ggn = ctx.curvature_operator(model, hset, curvature="ggn", mode=case.mode)
    return {
        "eigenvalues": top.eigenvalues,
        "eigenvectors": top.eigenvectors,
        "converged": top.converged,
        "trace": tr.trace,
        "trace_sq": tr.trace_sq,
        "density_nodes": dens.nodes,
        "density_weights": dens.weights,
        "loss": lg.loss,
        "gradient": lg.gradient,
        "ggn_product": ggn @ probe_block(ggn.size),
        "hvps": op.num_hvps,
    }


def moment_results(ctx: DistributedContext) -> dict[str, Any]:
    """Gradient second moment M and covariance C = M − ḡḡᵀ of the MLP case (weight decay included) over
    the whole set, from the shards: M wraps as it is, C as M with a correction by the all-reduced ḡ."""
    model, hset, mode = MLP_CASE.build(), MLP_CASE.data(), MLP_CASE.mode
    shard = ctx.shard(hset)
    local = EmpiricalRisk(model, shard.hessian_set.x, shard.hessian_set.y, mode=mode)
    g = ctx.risk(model, hset, mode=mode).loss_and_gradient().gradient
    M = DistributedOperator(SecondMomentOperator(local), ShardReducer(shard.size, shard.total, ctx.group))
    C = DistributedOperator(
        SecondMomentOperator(local),
        ShardReducer(shard.size, shard.total, ctx.group),
        correction=lambda V: -g[:, None] * (g @ V),
    )
    V = probe_block(M.size)
    return {"second_moment_product": M @ V, "covariance_product": C @ V}


def sabotage(op: DistributedOperator, rank: int, scenario: str) -> None:
    """Make rank 1 misbehave at its SABOTAGED_PRODUCT-th product."""
    if rank != 1:
        return
    count = [0]
    inner, outer = op.local._matmat, op._matmat

    def local_product(V: torch.Tensor) -> torch.Tensor:
        count[0] += 1
        if count[0] == SABOTAGED_PRODUCT:
            if scenario == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            if scenario == "stall":
                time.sleep(3600)
            if scenario == "share_error":
                raise RuntimeError("simulated: CUDA out of memory on rank 1")
            if scenario == "nonfinite":
                return torch.full_like(inner(V), float("nan"))
        return inner(V)

    def nudged_product(V: torch.Tensor) -> torch.Tensor:
        if count[0] == SABOTAGED_PRODUCT - 1:  # one ulp off in one entry, as a different CPU might round
            V = V.clone()
            V[0, 0] = torch.nextafter(V[0, 0], torch.tensor(float("inf"), dtype=V.dtype))
        return outer(V)

    op.local._matmat = local_product  # type: ignore[method-assign]
    if scenario == "diverge":
        op._matmat = nudged_product  # type: ignore[method-assign]


def failing_solve(ctx: DistributedContext, scenario: str) -> dict[str, Any]:
    model, hset = MLP_CASE.build(), MLP_CASE.data()
    op = ctx.curvature_operator(model, hset, mode=HessianMode())
    assert isinstance(op, DistributedOperator)
    sabotage(op, ctx.rank, scenario)
    top = eigsh_topk(op, MLP_CASE.k, tol=1e-10, seed=3)
    return {"eigenvalues": top.eigenvalues}


def recoverable(ctx: DistributedContext) -> dict[str, Any]:
    """Each failure that every rank learns of in the same collective leaves the ranks in step: record
    each rank's error, then show a clean solve still works."""
    errors = {}
    for scenario in ("share_error", "nonfinite", "diverge"):
        try:
            failing_solve(ctx, scenario)
            errors[scenario] = None
        except (RankFailure, RanksDiverged, NonFiniteCurvature, RuntimeError) as exc:
            errors[scenario] = f"{type(exc).__name__}: {exc}"
    return {"errors": errors, **failing_solve(ctx, "none")}


def main(scenario: str, out_dir: Path) -> int:
    torch.set_num_threads(1)
    if scenario == "mixed_device" and os.environ.get("RANK") == "1":
        real = launch.fingerprint
        launch.fingerprint = lambda dev: launch.RankFingerprint(  # type: ignore[assignment]
            "cuda", real(dev).torch_version, real(dev).draw, real(dev).host
        )
    try:
        ctx = init_distributed("cpu", timeout_s=TIMEOUT_S)
        try:
            if scenario == "equal":
                result = {name: case_results(ctx, name) for name in CASES}
                result["moments"] = moment_results(ctx)
            elif scenario == "recoverable":
                result = recoverable(ctx)
            else:
                result = failing_solve(ctx, scenario)
            result["world_size"] = ctx.world_size
            torch.save(result, out_dir / f"rank{ctx.rank}.pt")
        finally:
            shutdown(ctx)
    except (HessdynError, RankFailure, RanksDiverged, RuntimeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], Path(sys.argv[2])))
