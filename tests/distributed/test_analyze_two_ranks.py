"""`hessdyn analyze` over two gloo ranks (torchrun, and plain processes as SLURM starts tasks) against the
single-process analysis of the same run: the same tables to 1e-10 relative, written by rank 0 alone, and
a lost rank ends the job with one line and leaves a folder that a rerun completes.

The reference is the library call `analyze_run` in this process; the ranks run the command line
(`hessdyn.cli.main`, what `python -m hessdyn` runs) under tests/distributed/_analyze_rank.py, which records
every write each rank makes under the run folder.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hessdyn.analysis.runner import analyze_run
from hessdyn.training.loop import train
from tests.training.helpers import typed_config

from .launcher import REPO, _env, free_port

pytestmark = pytest.mark.slow

RTOL = 1e-10
TRAIN = [
    "model.widths=[12]",
    "trainer.max_steps=30",
    "trainer.batch_size=64",
    "checkpoint.schedule=list",
    "checkpoint.steps=[5,15]",
    "trainer.log_every=10",
    "optimizer.lr=0.3",
    "dataset.n_train=400",
    "dataset.n_test=100",
]
# an odd Hessian set (shards of 51 and 50 examples), every distributed metric group, tight solves
ANALYSIS = [
    "analysis.top_k=4",
    "analysis.bottom_k=2",
    "analysis.hessian_set=101",
    "analysis.batch_size=40",
    "analysis.tol=1e-10",
    "analysis.trace_hvps=30",
    "analysis.density_probes=2",
    "analysis.density_steps=12",
    "analysis.null_random_vectors=20",
    "analysis.null_init_seeds=1",
    "analysis.metrics=[spectrum,bottom,trace,trajectory,localization,alignment,optimizer,density]",
]
# columns that time the work rather than measure the curvature
TIMING = {"wall_s", "time_s", "seconds"}
# a converged pair's residual ||Hv - λv|| is rounding noise (~1e-16·|λ1|·steps), so it agrees to RTOL of the
# scale it is measured against (the largest |eigenvalue|; 1 for the relative residual), not of itself
RESIDUALS = {"residual": "eigenvalue", "rel_residual": None}
RANK_MODULE = "tests.distributed._analyze_rank"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("trained") / "run"
    train(typed_config(TRAIN), run)
    return run


@pytest.fixture(scope="module")
def reference(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("reference") / "run"
    shutil.copytree(trained, run)
    analyze_run(run, typed_config(ANALYSIS, config_name="analyze").analysis, progress=False)
    return run / "analysis"


def tables(folder: Path) -> dict[str, pd.DataFrame]:
    return {p.name: pd.read_csv(p) for p in sorted(folder.glob("*.csv"))}


def assert_same_tables(got: Path, want: Path) -> None:
    a, b = tables(got), tables(want)
    assert a.keys() == b.keys() and "spectrum.csv" in a and "summary.csv" in a
    for name, ref in b.items():
        out = a[name]
        assert list(out.columns) == list(ref.columns) and len(out) == len(ref), name
        for col in ref.columns:
            if col in TIMING:
                continue
            x, y = out[col].to_numpy(), ref[col].to_numpy()
            if np.issubdtype(y.dtype, np.number) and not np.issubdtype(y.dtype, np.bool_):
                x, y = x.astype(np.float64), y.astype(np.float64)
                scale = max(float(np.nanmax(np.abs(y))) if np.isfinite(y).any() else 0.0, 1e-300)
                if col in RESIDUALS:
                    of = RESIDUALS[col]
                    scale = float(ref[of].abs().max()) if of is not None else 1.0
                assert np.array_equal(np.isnan(x), np.isnan(y)), f"{name}:{col} NaNs differ"
                err = float(np.nanmax(np.abs(x - y), initial=0.0)) / scale
                assert err <= RTOL, f"{name}:{col} differs by {err:.2e} relative"
            else:
                assert out[col].equals(ref[col]), f"{name}:{col}"  # NaNs in the same places are equal


def analyze_args(run: Path) -> list[str]:
    return ["analyze", f"run_dir={run}", *ANALYSIS, "analysis.distributed=true", "analysis.device=cpu"]


def torchrun_analyze(run: Path, out: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    return subprocess.run(
        [*cmd, "-m", RANK_MODULE, str(run), str(out), "--", *analyze_args(run)],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )


def task_analyze(run: Path, out: Path, die_after: Path) -> list[subprocess.CompletedProcess]:
    """Two plain processes with the env:// variables set, as SLURM starts tasks (no agent to stop the
    others when one dies); rank 1 kills itself at its first product after `die_after` exists."""
    port, procs = str(free_port()), []
    for rank in range(2):
        env = _env({"RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_RANK": str(rank)})
        env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
        opts = ["--die-after", str(die_after)] if rank == 1 else []
        cmd = [sys.executable, "-m", RANK_MODULE, str(run), str(out), *opts, "--", *analyze_args(run)]
        procs.append(subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    deadline = time.monotonic() + 600
    results = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
        results.append(subprocess.CompletedProcess(p.args, p.returncode, stdout.decode(), stderr.decode()))
    return results


def test_torchrun_analyze_writes_the_single_process_tables_from_rank_0_alone(
    trained: Path, reference: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    proc = torchrun_analyze(run, tmp_path / "audit")
    assert proc.returncode == 0, f"torchrun failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert_same_tables(run / "analysis", reference)
    meta = json.loads((run / "analysis" / "analysis.json").read_text())
    assert meta["status"] == "complete" and meta["ranks"] == 2
    rank0 = json.loads((tmp_path / "audit" / "writes-rank0.json").read_text())
    rank1 = json.loads((tmp_path / "audit" / "writes-rank1.json").read_text())
    assert any("spectrum.csv" in w for w in rank0)  # the audit sees rank 0's writes
    assert rank1 == [], f"rank 1 wrote under the run folder: {rank1[:5]}"


def test_a_lost_rank_ends_the_job_with_one_line_and_a_rerun_completes_it(
    trained: Path, reference: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    first = run / "analysis" / "steps" / "step_00000005.json"  # rank 0 committed the first checkpoint
    rank0, rank1 = task_analyze(run, tmp_path / "audit", die_after=first)
    assert rank1.returncode == -9
    assert rank0.returncode == 1, rank0.stderr[-2000:]
    errors = [line for line in rank0.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and "Traceback" not in rank0.stderr, rank0.stderr[-2000:]
    assert "rank 0 of 2" in errors[0] and "rerun" in errors[0]
    assert first.exists() and not (run / "analysis" / "steps" / "step_00000015.json").exists()
    analyze_run(run, typed_config(ANALYSIS, config_name="analyze").analysis, progress=False)
    assert_same_tables(run / "analysis", reference)
