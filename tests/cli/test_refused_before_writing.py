"""Settings refused before anything is written (issue 14): one line on stderr, exit status 2 (preflight),
and no file or folder under the results folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from hessdyn.store import RunDir, RunStatus

TINY = ["model.widths=[8]", "trainer.max_steps=20", "dataset.n_train=100", "dataset.n_test=20"]


def _written(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def _one_line(proc: subprocess.CompletedProcess) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_device_cuda_without_a_gpu_writes_no_run_folder(run_cli, tmp_path):
    """It used to write the run folder (.hydra, train.log) before it refused."""
    proc = run_cli("train", *TINY, "device=cuda")
    assert proc.returncode == 2 and "device=cuda but no CUDA device is available" in _one_line(proc)
    assert _written(tmp_path / "results") == []


def test_out_dir_that_is_a_file_is_one_line_and_writes_nothing(run_cli, tmp_path):
    (tmp_path / "results").mkdir()
    blocker = tmp_path / "results" / "notes.txt"
    blocker.write_text("mine\n")
    proc = run_cli("train", *TINY, f"out_dir={blocker}")
    assert proc.returncode == 2 and f"out_dir: {blocker} is a file, not a folder" in _one_line(proc)
    assert _written(tmp_path / "results") == ["notes.txt"] and blocker.read_text() == "mine\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_out_dir_is_one_line_and_writes_nothing(run_cli, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        proc = run_cli("train", *TINY, f"out_dir={locked / 'sub'}")
    finally:
        locked.chmod(0o755)
    assert proc.returncode == 2 and f"cannot write into {locked}" in _one_line(proc)
    assert _written(locked) == []


def test_analyze_run_dir_that_is_a_file_says_so(run_cli, tmp_path):
    target = tmp_path / "run.json"
    target.write_text("{}")
    proc = run_cli("analyze", f"run_dir={target}")
    assert proc.returncode == 2 and f"run_dir {target} is a file" in _one_line(proc)


@pytest.mark.slow
def test_sigterm_records_interrupted_and_the_same_command_resumes(tmp_path):
    """SIGTERM (kill, a cluster's preemption) used to kill the run mid-way, leaving run.json 'running'."""
    args = [*TINY[:1], "trainer.max_steps=5000", "checkpoint.schedule=every", "checkpoint.every=100"]
    env = {**os.environ, "HESSDYN_RESULTS": str(tmp_path / "results"), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "hessdyn", "train", *args]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and not list((tmp_path / "results").rglob("step_00000200.pt")):
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before SIGTERM"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "interrupted by SIGTERM" in err and "rerun the same command" in err
    (run,) = [p.parent for p in (tmp_path / "results").rglob("run.json")]
    record = RunDir(run).read_record()
    assert record["status"] == RunStatus.INTERRUPTED.value and "interrupted by SIGTERM" in record["error"]
    assert RunDir(run).status() is RunStatus.INTERRUPTED and 200 <= record["steps"] < 5000
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    record = RunDir(run).read_record()
    assert record["status"] == "completed" and record["steps"] == 5000 and record["resumes"]
