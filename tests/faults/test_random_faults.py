"""Randomized faults (issue 14): bit flips at random offsets of a checkpoint, and kill -9 at random moments
of ``hessdyn train``, ``analyze`` and ``report``, 20 trials each.

After every fault, nothing is silently wrong: a damaged checkpoint is refused (one line naming it) or
loads to exactly the intact tensors; every file a killed process left passes its check; a killed run is
"interrupted", never "running". In the end nothing is lost: rerunning the command gives, bit for bit,
what an undisturbed run gives. The seeds are fixed, so a failure is reproducible.
"""

from __future__ import annotations

import glob
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from hessdyn.analysis.runner import analyze_run
from hessdyn.config.errors import HessdynError
from hessdyn.report.folders import is_report_dir
from hessdyn.store import RunDir, RunStatus, load_checkpoint
from hessdyn.training.loop import train
from hessdyn.training.metrics_log import logged_steps
from tests.faults.corrupt import xor_bytes
from tests.training.helpers import typed_config

TRIALS = 20
TRAIN = [
    "model.widths=[16]",
    "trainer.max_steps=300",
    "trainer.batch_size=32",
    "optimizer=adam",
    "optimizer.lr=0.003",
    "checkpoint.schedule=every",
    "checkpoint.every=10",
    "trainer.log_every=3",
    "trainer.eval_every=25",
]
ANALYZED = ["model.widths=[8]", "trainer.max_steps=60", "checkpoint.schedule=every", "checkpoint.every=6"]
ANALYSIS = ["analysis.top_k=3", "analysis.bottom_k=1", "analysis.hessian_set=100", "analysis.tol=1e-6"]
KEYS = ["step", "split", "source"]


def _spawn(command: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "hessdyn", command, *args],
        env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _timed(command: str, args: list[str], env: dict[str, str], marker: str) -> tuple[float, float]:
    """Run the command undisturbed: (seconds until a file matching ``marker`` appears, i.e. when it starts
    writing, after the imports; seconds to the end)."""
    t0, started = time.perf_counter(), None
    proc = _spawn(command, args, env)
    while proc.poll() is None:
        if started is None and glob.glob(marker, recursive=True):
            started = time.perf_counter() - t0
        time.sleep(0.005)
    assert proc.returncode == 0, (command, args)
    total = time.perf_counter() - t0
    return (total if started is None else started), total


def _kill_at(proc: subprocess.Popen, delay: float) -> bool:
    """kill -9 the process group after ``delay`` seconds; False when it finished first."""
    try:
        proc.wait(timeout=delay)
        return False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return True


def _random_moment(rng: random.Random, timing: tuple[float, float]) -> float:
    """A moment while the command writes (not while Python imports): uniform over its writing phase."""
    started, total = timing
    return rng.uniform(started, total)


def _weights(run: Path) -> dict[int, dict[str, torch.Tensor]]:
    return {st: load_checkpoint(p)["model"] for st, p in RunDir(run).checkpoints()}


# ---------------------------------------------------------------------------------------- bit flips
@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("flips") / "run"
    train(typed_config(ANALYZED), run)
    return run


def test_bit_flips_at_random_offsets_are_refused_or_harmless(small_run, tmp_path):
    rng = random.Random(14)
    _, intact = RunDir(small_run).checkpoints()[-1]
    chash = RunDir(small_run).read_record()["config_hash"]
    want = load_checkpoint(intact, config_hash=chash)
    size = intact.stat().st_size
    refused = 0
    for trial in range(TRIALS):
        path = tmp_path / intact.name
        shutil.copy(intact, path)
        offset, count = rng.randrange(size), rng.randint(1, 4)
        xor_bytes(path, offset, count, mask=rng.randint(1, 255))
        try:
            got = load_checkpoint(path, config_hash=chash)
        except HessdynError as exc:
            assert "\n" not in str(exc) and str(path) in str(exc), (trial, offset, str(exc))
            refused += 1
            continue
        # loaded: then every tensor and field is exactly the intact one (the flip hit unused bytes)
        assert got["step"] == want["step"] and got["config_hash"] == want["config_hash"], (trial, offset)
        assert all(torch.equal(got["model"][k], want["model"][k]) for k in want["model"]), (trial, offset)
    assert refused >= TRIALS // 2  # nearly every byte of a checkpoint is tensor data or checked structure


# ------------------------------------------------------------------------------------------ kill -9
def _check_killed_run(run: Path, chash: str) -> None:
    """What a killed training process left is sound: run.json parses and is not 'running', every
    checkpoint passes its checks, train.csv's rows parse (a partial last line is left out)."""
    rundir = RunDir(run)
    record = rundir.read_record()
    if record is not None:
        assert rundir.status(record) is not RunStatus.RUNNING
    for _, path in rundir.checkpoints():
        load_checkpoint(path, config_hash=chash)
    logged_steps(rundir.train_csv)


@pytest.mark.slow
def test_kill_9_at_random_moments_of_train_loses_nothing(tmp_path):
    rng = random.Random(1414)
    ref_env, env = {"HESSDYN_RESULTS": str(tmp_path / "ref")}, {"HESSDYN_RESULTS": str(tmp_path / "killed")}
    timing = _timed("train", TRAIN, ref_env, f"{tmp_path}/ref/**/run.json")
    (reference,) = [p.parent for p in (tmp_path / "ref").rglob("run.json")]
    chash = RunDir(reference).read_record()["config_hash"]
    kills = 0
    for _ in range(TRIALS):
        killed = _kill_at(_spawn("train", TRAIN, env), _random_moment(rng, timing))
        kills += killed
        runs = [p.parent for p in (tmp_path / "killed").rglob("run.json")]
        for run in runs:
            _check_killed_run(run, chash)
        if runs and RunDir(runs[0]).status() is RunStatus.COMPLETED:
            assert _weights(runs[0]).keys() == _weights(reference).keys()
            shutil.rmtree(tmp_path / "killed")  # start over, so that later kills hit a run in progress
    assert kills >= TRIALS // 2
    assert _spawn("train", TRAIN, env).wait(timeout=600) == 0
    (run,) = [p.parent for p in (tmp_path / "killed").rglob("run.json")]
    want, got = _weights(reference), _weights(run)
    assert want.keys() == got.keys()
    for st in want:
        assert all(torch.equal(want[st][k], got[st][k]) for k in want[st]), st
    ref, table = pd.read_csv(RunDir(reference).train_csv), pd.read_csv(RunDir(run).train_csv)
    assert not table.duplicated(KEYS).any() and len(table) == len(ref)
    cols = [*KEYS, "loss", "accuracy", "grad_norm", "update_norm", "param_norm"]
    pd.testing.assert_frame_equal(table[cols], ref[cols])


def _tables(folder: Path) -> dict[str, pd.DataFrame]:
    return {p.name: pd.read_csv(p).drop(columns=["wall_s"], errors="ignore") for p in folder.glob("*.csv")}


@pytest.mark.slow
def test_kill_9_at_random_moments_of_analyze_loses_nothing(small_run, tmp_path):
    rng = random.Random(1415)
    ref, run = tmp_path / "ref", tmp_path / "run"
    shutil.copytree(small_run, ref)
    shutil.copytree(small_run, run)
    timing = _timed("analyze", [f"run_dir={ref}", *ANALYSIS], {}, f"{ref}/analysis/analysis.json")
    kills = 0
    for _ in range(TRIALS):
        kills += _kill_at(_spawn("analyze", [f"run_dir={run}", *ANALYSIS], {}), _random_moment(rng, timing))
        adir = RunDir(run).analysis()
        adir.read_meta()  # parses (or is absent)
        for st in RunDir(run).checkpoint_steps():
            assert adir.step_problem(st) is None, st
        if (adir.read_meta() or {}).get("status") == "complete":
            assert _tables(adir.path).keys() == _tables(ref / "analysis").keys()
            shutil.rmtree(adir.path)  # start over, so that later kills hit an analysis in progress
    # a resumed analysis has less left to do, so later moments often fall after its end: a quarter killed
    assert kills >= TRIALS // 4
    assert _spawn("analyze", [f"run_dir={run}", *ANALYSIS], {}).wait(timeout=600) == 0
    want, got = _tables(ref / "analysis"), _tables(run / "analysis")
    assert want.keys() == got.keys()
    for name in want:
        pd.testing.assert_frame_equal(want[name], got[name], check_exact=True, obj=name)


@pytest.mark.slow
def test_kill_9_at_random_moments_of_report_leaves_a_whole_report_or_none(small_run, tmp_path):
    rng = random.Random(1416)
    sweep = tmp_path / "sweep"
    for seed in (0, 1):
        shutil.copytree(small_run, sweep / f"seed={seed}")
        analyze_run(sweep / f"seed={seed}", typed_config(ANALYSIS, config_name="analyze").analysis)
    ref, out = tmp_path / "ref_report", tmp_path / "report"
    timing = _timed("report", [f"sweep_dir={sweep}", f"out={ref}"], {}, f"{tmp_path}/.ref_report.staging-*")
    kills = 0
    for _ in range(TRIALS):
        kills += _kill_at(
            _spawn("report", [f"sweep_dir={sweep}", f"out={out}"], {}), _random_moment(rng, timing)
        )
        assert not out.exists() or is_report_dir(out)  # the old report or the new one, whole
    assert kills >= TRIALS // 2
    assert _spawn("report", [f"sweep_dir={sweep}", f"out={out}"], {}).wait(timeout=600) == 0
    assert is_report_dir(out)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no staging left
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in ref.iterdir())
    pd.testing.assert_frame_equal(pd.read_csv(out / "runs.csv"), pd.read_csv(ref / "runs.csv"))
