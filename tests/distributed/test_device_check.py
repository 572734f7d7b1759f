"""scripts/device_check.sh is prepared for a machine with a GPU; here it is checked as far as a CPU can:
its syntax, its refusal without a GPU, the comparison it judges by, and its compare step with the CPU
standing in for the GPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "device_check.sh"


def run_script(*args: str, tmp_path: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    env.pop("OUT", None)
    return subprocess.run(
        ["bash", str(SCRIPT), "--out", str(tmp_path / "out"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_the_script_parses():
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0


def test_without_a_gpu_it_refuses_with_one_line(tmp_path):
    proc = run_script(tmp_path=tmp_path)
    assert proc.returncode == 3
    assert proc.stderr.strip() == (
        "device_check: no CUDA device is visible (torch.cuda.is_available() is False): nothing to check; "
        "--cpu-dry-run runs the steps on the CPU"
    )
    assert not (tmp_path / "out").exists()  # nothing written


def _fake_analysis(folder: Path, scale: float) -> None:
    folder.mkdir(parents=True)
    pd.DataFrame(
        {
            "step": [0, 0, 5, 5],
            "which": ["top", "bottom", "top", "bottom"],
            "rank": [1, 1, 1, 1],
            "eigenvalue": [2.0 * scale, -0.5, 3.0, -0.25],
            "ipr": [0.01, float("nan"), 0.02, float("nan")],
        }
    ).to_csv(folder / "spectrum.csv", index=False)
    pd.DataFrame(
        {"step": [0, 5], "lambda_max": [2.0 * scale, 3.0], "trace": [10.0, 12.0], "trace_sq": [40.0, 50.0]}
    ).assign(loss=[2.3, 1.1], grad_norm=[0.5, 0.2]).to_csv(folder / "summary.csv", index=False)


def test_the_comparison_passes_within_and_fails_beyond_its_tolerance(tmp_path):
    run = tmp_path / "run"
    _fake_analysis(run / "analysis-ref_cpu64", 1.0)
    _fake_analysis(run / "analysis-dev_f64", 1.0 + 1e-12)
    _fake_analysis(run / "analysis-dev_f32", 1.0 + 1e-5)
    compare = [sys.executable, str(REPO / "scripts" / "device_compare.py"), str(run), "ref_cpu64"]
    ok = subprocess.run([*compare, "dev_f64=1e-9", "dev_f32=1e-3"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    rows = [line for line in ok.stdout.splitlines() if line.startswith("| dev_")]
    assert rows[0].startswith("| dev_f64 | 1e-09 | 6.7e-13 | 6.7e-13 | 0.0e+00") and rows[0].endswith(
        "| ok |"
    )
    bad = subprocess.run([*compare, "dev_f32=1e-9"], capture_output=True, text=True)
    assert bad.returncode == 1 and bad.stdout.rstrip().endswith("| FAIL (eigenvalue, lambda_max) |")


@pytest.mark.slow
def test_the_compare_step_runs_with_the_cpu_standing_in(tmp_path):
    proc = run_script("--cpu-dry-run", "--steps", "env,compare", tmp_path=tmp_path, timeout=900)
    report = (tmp_path / "out" / "device_check.md").read_text()
    assert proc.returncode == 0, report + (tmp_path / "out" / "device_check.log").read_text()[-4000:]
    assert "device cpu (CPU dry run" in report and "## compare: ok" in report
    assert "| ref_cpu64 | 1e-09 | 0.0e+00" in report  # the reference against itself
    row = next(line for line in report.splitlines() if line.startswith("| dev_f32 |"))
    assert row.endswith("| ok |")
