"""Sweeps through every launcher, the resumable pipeline, and the quickstart end to end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import hessdyn_exe
from tests.report.fake_runs import make_sweep

TINY_TRAIN = [
    "model.widths=[8]",
    "trainer.max_steps=30",
    "trainer.batch_size=64",
    "trainer.log_every=10",
    "trainer.eval_every=10",
    "checkpoint.schedule=list",
    "checkpoint.steps=[5]",
    "dataset.n_train=200",
    "dataset.n_test=50",
]
TINY_ANALYSIS = [
    "analysis.top_k=2",
    "analysis.bottom_k=0",
    "analysis.hessian_set=100",
    "analysis.trace_hvps=12",
    "analysis.null_random_vectors=20",
    "analysis.null_init_seeds=1",
]


def _override(dirname: str, key: str) -> str:
    """The value of ``key`` in a Hydra override_dirname such as ``a=1,model.widths=[8],b=2``."""
    return dirname.split(f"{key}=", 1)[1].split(",")[0]


def _status(run_dir: Path) -> str:
    return json.loads((run_dir / "run.json").read_text())["status"]


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["basic", "joblib", "submitit_local"])
def test_tiny_multirun_with_each_launcher_is_found_by_analyze_and_report(run_cli, tmp_path, launcher):
    extra = [] if launcher == "basic" else [f"hydra/launcher={launcher}"]
    if launcher == "joblib":
        extra.append("hydra.launcher.n_jobs=2")
    # The third job diverges (huge lr): the sweep must go on and the report must list it.
    proc = run_cli(
        "train",
        "-m",
        "name=sweep",
        "optimizer.lr=0.1,0.3,1e15",
        *TINY_TRAIN,
        *extra,
        env={"OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweep = tmp_path / "results" / "sweep"
    runs = sorted(sweep.rglob("run.json"), key=lambda p: float(_override(p.parent.name, "optimizer.lr")))
    runs = [p.parent for p in runs]
    assert [float(_override(r.name, "optimizer.lr")) for r in runs] == [0.1, 0.3, 1e15]
    assert [_status(r) for r in runs] == ["completed", "completed", "diverged"]
    if launcher != "basic":
        # Discovery is what differs between launchers' layouts; the full analyze/report path runs once below.
        from hessdyn.analysis.command import target_runs
        from hessdyn.report.runs import discover_runs

        assert sorted(target_runs(None, str(sweep))) == sorted(runs)
        found = discover_runs(sweep, [], "optimizer.lr")
        assert sorted(r.status for r in found) == ["completed", "completed", "diverged"]
        return
    proc = run_cli("analyze", f"sweep_dir={sweep}", *TINY_ANALYSIS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for run in runs:
        assert (run / "analysis" / "summary.csv").is_file()
    proc = run_cli("report", f"sweep_dir={sweep}", "report.group_by=optimizer.lr")
    assert proc.returncode == 0, proc.stderr[-3000:]
    listed = pd.read_csv(sweep / "report" / "runs.csv")
    assert len(listed) == 3
    assert sorted(listed.status) == ["completed", "completed", "diverged"]


@pytest.mark.slow
def test_failed_job_is_recorded_and_the_sweep_goes_on(run_cli, tmp_path):
    # dataset=mnist with an empty data root fails at data loading; the other job trains.
    empty = tmp_path / "no-data"
    empty.mkdir()
    proc = run_cli(
        "train",
        "-m",
        "name=mixed",
        "dataset=digits,mnist",
        *TINY_TRAIN,
        env={"HESSDYN_DATA": str(empty), "XDG_CACHE_HOME": str(tmp_path / "cache")},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = {
        _override(p.parent.name, "dataset"): p.parent
        for p in (tmp_path / "results" / "mixed").rglob("run.json")
    }
    assert _status(runs["digits"]) == "completed"
    failed = json.loads((runs["mnist"] / "run.json").read_text())
    assert failed["status"] == "failed" and "MNIST not found" in failed["error"]


def _pipeline(tmp_path: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "HESSDYN_RESULTS": str(tmp_path / "results"), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [*hessdyn_exe(), "run", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


# An analysis override names no run folder (issue 14, defect 1): the runs stay optimizer=X,seed=Y, they are
# analyzed with it, and the report finds them.
QUICKSTART = ("experiment=quickstart", "analysis.null_init_seeds=1")


@pytest.mark.slow
def test_quickstart_pipeline_end_to_end_resumes_after_kill_without_redoing_work(tmp_path):
    """`hessdyn run experiment=quickstart`, killed during its analysis stage, then rerun twice."""
    sweep = tmp_path / "results" / "quickstart"
    proc = _pipeline(tmp_path, *QUICKSTART)
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if list(sweep.glob("*/analysis/steps/*.json")):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the pipeline ended before its analysis stage could be interrupted"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    runs = sorted(p.parent for p in sweep.glob("*/run.json"))
    assert len(runs) == 4 and all(_status(r) == "completed" for r in runs)
    assert sorted(r.name for r in runs) == [
        f"optimizer={o},seed={s}" for o in ("adam", "sgd") for s in (0, 1)
    ]
    checkpoint_times = {p: p.stat().st_mtime_ns for p in sweep.rglob("checkpoints/*.pt")}
    done_before = {p: p.stat().st_mtime_ns for p in sweep.glob("*/analysis/steps/*.json")}

    second = _pipeline(tmp_path, *QUICKSTART)
    out, _ = second.communicate(timeout=900)
    assert second.returncode == 0, out[-3000:]
    assert "train: all 4 run(s) finished, skipped" in out
    assert {p: p.stat().st_mtime_ns for p in sweep.rglob("checkpoints/*.pt")} == checkpoint_times
    for path, stamp in done_before.items():
        assert path.stat().st_mtime_ns == stamp, f"{path} was recomputed"
    assert (sweep / "report" / "index.html").is_file()
    for run in runs:
        meta = json.loads((run / "analysis" / "analysis.json").read_text())
        assert meta["status"] == "complete"
        assert meta["settings"]["null_init_seeds"] == 1 and meta["settings"]["top_k"] == 10
        summary = pd.read_csv(run / "analysis" / "summary.csv")
        assert list(summary.step) == meta["selected_steps"]
    report_stamp = (sweep / "report" / "index.html").stat().st_mtime_ns

    third = _pipeline(tmp_path, *QUICKSTART)
    out, _ = third.communicate(timeout=300)
    assert third.returncode == 0, out[-3000:]
    assert "analyze: all 4 run(s) analyzed, skipped" in out and "is up to date, skipped" in out
    assert (sweep / "report" / "index.html").stat().st_mtime_ns == report_stamp


@pytest.mark.slow
def test_run_refuses_flags_and_reports_bad_overrides_in_one_line(run_cli):
    proc = run_cli("run", "experiment=quickstart", "optimizer.lr=-1")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "hessdyn: error: invalid value for 'optimizer.lr': must be > 0, got -1.0"
    proc = run_cli("run", "--cfg", "job")
    assert proc.returncode == 2 and "overrides only" in proc.stderr


def test_every_experiment_is_documented_in_the_readme():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    conf = Path(__file__).resolve().parents[2] / "conf" / "experiment"
    for path in conf.glob("*.yaml"):
        assert f"`{path.stem}`" in readme, f"experiment {path.stem} is not in the README"


def test_summarize_script_runs_on_a_python_path():
    script = Path(__file__).resolve().parents[2] / "scripts" / "summarize_dynamics.py"
    proc = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "Headline numbers" in proc.stdout


def test_summarize_script_prints_plain_and_cluster_aware_displacement_by_rank_band(tmp_path):
    """The seed-study summary labels both matched displacements, per rank band, with the seed spread,
    and the numbers are the means of trajectory.csv's consecutive-pair rows."""
    runs = make_sweep(tmp_path / "sweep", seeds=(0, 1, 2))
    script = Path(__file__).resolve().parents[2] / "scripts" / "summarize_dynamics.py"
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "sweep"), "--bands", "1-3,4-5"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    lines = {line.split(":")[0].strip(): line for line in proc.stdout.splitlines()}
    assert (
        "displacement, matched, plain Hungarian" in lines and "displacement, matched, cluster-aware" in lines
    )
    values = []
    for run in [r for r in runs if "optimizer=sgd" in r.name]:
        traj = pd.read_csv(run / "analysis" / "trajectory.csv")
        steps = sorted(pd.read_csv(run / "analysis" / "summary.csv").step)
        pairs = set(zip(steps[:-1], steps[1:], strict=True))
        rows = traj[[p in pairs for p in zip(traj.step_a, traj.step_b, strict=True)]]
        rows = rows[(rows.metric == "displacement_matched_cluster") & rows["rank"].between(4, 5)]
        values.append(rows.value.mean())
    sgd = proc.stdout[proc.stdout.index("  sgd (n=3") :]
    cluster_line = next(x for x in sgd.splitlines() if "cluster-aware" in x)
    expected = f"ranks 4-5 {np.mean(values):.3g} ± {np.std(values, ddof=1):.2g}"
    assert expected in cluster_line
    assert "adam step" in proc.stdout and "ratio" in proc.stdout  # Adam's early preconditioned sharpness
