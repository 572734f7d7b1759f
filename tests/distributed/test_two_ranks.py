"""Two gloo processes on the CPU against one process: same numbers, same bits on every rank, and failures
that end the job with one line instead of a hang.

The single-process references are computed here with the plain operators; the ranks run
tests/distributed/_worker.py with an odd-sized set (uneven shards).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import torch

from hessdyn.curvature import CovarianceOperator, EmpiricalRisk, SecondMomentOperator, curvature_operator
from hessdyn.solvers import eigsh_topk, hutch_plus_plus, spectral_density
from hessdyn.trajectory import ipr

from .cases import CASES, MLP_CASE
from .launcher import launch_ranks, torchrun

RTOL = 1e-10


def relative_error(a: Any, b: Any) -> float:
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


def bitwise_equal(a: Any, b: Any) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(bitwise_equal(a[k], b[k]) for k in a)
    if isinstance(a, torch.Tensor):
        return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a.view(-1), b.view(-1))
    return a == b


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("equal")
    proc = torchrun("equal", out)
    assert proc.returncode == 0, f"torchrun failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(2)]


def reference(name: str) -> dict[str, Any]:
    case = CASES[name]
    model, hset = case.build(), case.data()
    op = curvature_operator(model, hset.x, hset.y, mode=case.mode)
    top = eigsh_topk(op, case.k, tol=1e-10, seed=3)
    tr = hutch_plus_plus(op, 30, seed=5)
    dens = spectral_density(op, 2, 12, seed=7)
    lg = EmpiricalRisk(model, hset.x, hset.y, mode=case.mode).loss_and_gradient()
    ggn = curvature_operator(model, hset.x, hset.y, curvature="ggn", mode=case.mode)
    V = torch.randn(ggn.size, 3, generator=torch.Generator().manual_seed(21), dtype=torch.float64)
    return {
        "eigenvalues": top.eigenvalues,
        "eigenvectors": top.eigenvectors,
        "trace": tr.trace,
        "trace_sq": tr.trace_sq,
        "density_nodes": dens.nodes,
        "density_weights": dens.weights,
        "loss": lg.loss,
        "gradient": lg.gradient,
        "ggn_product": ggn @ V,
    }


def test_every_rank_holds_the_same_bits(two_ranks):
    assert two_ranks[0]["world_size"] == 2
    assert bitwise_equal(two_ranks[0], two_ranks[1])


@pytest.mark.parametrize("name", list(CASES))
def test_two_ranks_equal_one_process(two_ranks, name):
    got, ref = two_ranks[0][name], reference(name)
    assert bool(got["converged"].all())
    for key in ("eigenvalues", "trace", "trace_sq", "loss", "gradient", "ggn_product"):
        assert relative_error(got[key], ref[key]) < RTOL, key
    # the same Ritz vectors up to rounding (unit rows, signs fixed the same way), hence the same IPR
    overlaps = (got["eigenvectors"] * ref["eigenvectors"]).sum(1)
    assert float((overlaps - 1).abs().max()) < 1e-9
    assert relative_error(ipr(got["eigenvectors"]), ipr(ref["eigenvectors"])) < RTOL
    # SLQ: the same probes, so the same quadrature nodes and weights
    assert relative_error(got["density_nodes"], ref["density_nodes"]) < 1e-9
    assert relative_error(got["density_weights"], ref["density_weights"]) < 1e-8


def test_gradient_moments_shard_like_the_hessian(two_ranks):
    """M = Σ w_n g_n g_nᵀ wraps as it is; C = M − ḡḡᵀ as M plus a correction with the global ḡ."""
    model, hset = MLP_CASE.build(), MLP_CASE.data()
    risk = EmpiricalRisk(model, hset.x, hset.y, mode=MLP_CASE.mode)
    M, C = SecondMomentOperator(risk), CovarianceOperator(risk)
    V = torch.randn(M.size, 3, generator=torch.Generator().manual_seed(21), dtype=torch.float64)
    got = two_ranks[0]["moments"]
    assert relative_error(got["second_moment_product"], M @ V) < RTOL
    assert relative_error(got["covariance_product"], C @ V) < RTOL


def _one_error(exits, rank: int) -> str:
    lines = exits[rank].error_lines()
    assert exits[rank].returncode == 1 and len(lines) == 1, exits[rank].stderr[-2000:]
    return lines[0]


def test_a_killed_rank_ends_the_job_with_one_line(tmp_path: Path):
    # rank 1 kills itself (SIGKILL) at its third product; no agent is there to stop rank 0 (as under srun)
    exits = launch_ranks("kill", tmp_path, timeout_s=60, wait_s=200)
    assert exits[1].returncode == -9
    line = _one_error(exits, 0)
    assert re.match(
        r"error: rank 0 of 2: a collective failed during a curvature product \(another rank", line
    )
    assert exits[0].exited_at - exits[1].exited_at < 30  # a closed connection fails at once, not at timeout


def test_a_hung_rank_ends_the_job_at_the_timeout(tmp_path: Path):
    # rank 1 sleeps at its third product: rank 0 waits for the process group's 5 s timeout, then stops
    exits = launch_ranks("stall", tmp_path, timeout_s=5, wait_s=200, stop_after_first=True)
    assert exits[1].returncode is None  # still asleep: killed by the launcher
    line = _one_error(exits, 0)
    assert "a collective failed during a curvature product" in line and "Timed out" in line


def test_failures_every_rank_learns_of_together_leave_the_ranks_in_step(tmp_path: Path):
    exits = launch_ranks("recoverable", tmp_path)
    assert [e.returncode for e in exits] == [0, 0], [e.stderr[-2000:] for e in exits]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    errors = [r["errors"] for r in ranks]
    assert errors[1]["share_error"] == "RuntimeError: simulated: CUDA out of memory on rank 1"
    assert errors[0]["share_error"].startswith("RankFailure: rank 0 of 2: 1 other rank(s) failed")
    for r in (0, 1):
        assert errors[r]["nonfinite"].startswith("NonFiniteCurvature:")
        assert errors[r]["diverge"].startswith(f"RanksDiverged: rank {r} of 2: the ranks hold different")
    # after three failed solves the ranks still agree and compute the right thing
    assert bitwise_equal(ranks[0]["eigenvalues"], ranks[1]["eigenvalues"])
    model, hset = MLP_CASE.build(), MLP_CASE.data()
    ref = eigsh_topk(curvature_operator(model, hset.x, hset.y), MLP_CASE.k, tol=1e-10, seed=3)
    assert relative_error(ranks[0]["eigenvalues"], ref.eigenvalues) < RTOL


def test_mixed_device_types_are_refused_with_one_line(tmp_path: Path):
    exits = launch_ranks("mixed_device", tmp_path)
    for r in (0, 1):
        assert _one_error(exits, r) == (
            "error: ranks use different device types (cpu on rank 0; cuda on rank 1): "
            "give every rank the same device"
        )
