"""Training runner: files, determinism, resume after kill -9, divergence, safe checkpoints, no overwrites."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from hessdyn.config.errors import HessdynError
from hessdyn.store import RunDir, load_checkpoint

TINY = ["trainer.log_every=5", "trainer.eval_every=20", "model.widths=[16]"]


def _run_dir(results: Path, name: str = "default") -> Path:
    dirs = [p.parent for p in (results / name).rglob("run.json")]
    assert len(dirs) == 1, dirs
    return dirs[0]


def _final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    step, path = RunDir(run_dir).checkpoints()[-1]
    return load_checkpoint(path)["model"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "overrides",
    [
        ["dataset=digits", "trainer.max_steps=60", "optimizer.lr=0.2"],
        [
            "dataset=synthetic",
            "trainer.epochs=6",
            "trainer.max_steps=null",
            "trainer.batch_size=64",
            "optimizer=adam",
            "optimizer.lr=0.01",
        ],
    ],
    ids=["digits-sgd-steps", "synthetic-adam-epochs"],
)
def test_short_training_lowers_loss_and_writes_every_file(run_cli, tmp_path, overrides):
    run_cli("train", *TINY, *overrides, check=True)
    run_dir = _run_dir(tmp_path / "results")
    for rel in (
        ".hydra/config.yaml",
        ".hydra/overrides.yaml",
        ".hydra/hydra.yaml",
        "run.json",
        "metrics/train.csv",
        "train.log",
    ):
        assert (run_dir / rel).is_file(), rel
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "completed"
    assert record["steps"] == record["total_steps"] > 0
    assert {"git_commit", "versions", "device", "config_hash", "wall_s"} <= set(record)
    steps = [s for s, _ in RunDir(run_dir).checkpoints()]
    assert steps[0] == 0 and steps[-1] == record["total_steps"] and steps == record["checkpoint_steps"]
    table = pd.read_csv(run_dir / "metrics" / "train.csv")
    assert list(table.columns) == [
        "step",
        "epoch",
        "split",
        "source",
        "loss",
        "accuracy",
        "lr",
        "grad_norm",
        "update_norm",
        "param_norm",
        "wall_s",
        "penalty",
        "batch_ws_bound",
    ]
    evals = table[(table.source == "eval") & (table.split == "train")].sort_values("step")
    assert evals.loss.iloc[-1] < 0.7 * evals.loss.iloc[0]
    batch = table[table.source == "batch"]
    assert (batch.grad_norm > 0).all() and (batch.update_norm > 0).all()
    assert not table.duplicated(["step", "split", "source"]).any()
    ckpt = load_checkpoint(RunDir(run_dir).checkpoints()[-1][1])
    assert {"model", "optimizer", "rng", "step", "epoch", "config_hash"} <= set(ckpt)


def test_same_config_and_seed_give_bit_identical_weights(tmp_path):
    from hessdyn.training.loop import train

    from .helpers import typed_config

    cfg = typed_config(["trainer.max_steps=40", "model.dropout=0.2", "optimizer=adam", *TINY])
    train(cfg, tmp_path / "a")
    train(cfg, tmp_path / "b")
    a, b = _final_weights(tmp_path / "a"), _final_weights(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)
    other = typed_config(["trainer.max_steps=40", "model.dropout=0.2", "optimizer=adam", "seed=1", *TINY])
    train(other, tmp_path / "c")
    c = _final_weights(tmp_path / "c")
    assert not all(torch.equal(a[k], c[k]) for k in a)


def _spawn_train(args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "hessdyn", "train", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


@pytest.mark.slow
def test_resume_after_kill_9_is_bit_identical(tmp_path):
    # Dropout + Adam + minibatches + checkpoints off the log grid exercise every piece of state.
    args = [
        "trainer.max_steps=400",
        "trainer.batch_size=32",
        "model.dropout=0.1",
        "optimizer=adam",
        "optimizer.lr=0.003",
        "checkpoint.schedule=every",
        "checkpoint.every=7",
        "trainer.log_every=3",
        "trainer.eval_every=11",
        "model.widths=[32,32]",
    ]
    ref_env = {**os.environ, "HESSDYN_RESULTS": str(tmp_path / "ref")}
    assert _spawn_train(args, ref_env).wait(timeout=600) == 0
    reference = _final_weights(_run_dir(tmp_path / "ref"))
    ref_table = pd.read_csv(_run_dir(tmp_path / "ref") / "metrics" / "train.csv")

    env = {**os.environ, "HESSDYN_RESULTS": str(tmp_path / "killed")}
    kills = 0
    for wanted_checkpoints in (5, 23, 41):  # kill at three different moments of the same run
        proc = _spawn_train(args, env)
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            run_dirs = list((tmp_path / "killed").rglob("checkpoints"))
            if run_dirs and len(RunDir(run_dirs[0].parent).checkpoints()) >= wanted_checkpoints:
                break
            time.sleep(0.01)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            kills += 1
        record = json.loads((_run_dir(tmp_path / "killed") / "run.json").read_text())
        if record["status"] == "completed":
            break
        assert record["status"] == "running"  # a killed process cannot record anything else
    assert kills >= 1
    assert _spawn_train(args, env).wait(timeout=600) == 0
    run_dir = _run_dir(tmp_path / "killed")
    final = _final_weights(run_dir)
    assert all(torch.equal(reference[k], final[k]) for k in reference)
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "completed" and record["resumes"]
    table = pd.read_csv(run_dir / "metrics" / "train.csv")
    keys = ["step", "split", "source"]
    assert not table.duplicated(keys).any()
    cols = ["loss", "accuracy", "grad_norm", "update_norm", "param_norm"]
    merged = ref_table.merge(table, on=keys, suffixes=("_ref", ""))
    assert len(merged) == len(ref_table) == len(table)
    for c in cols:
        pd.testing.assert_series_equal(merged[c], merged[f"{c}_ref"], check_names=False)


@pytest.mark.slow
def test_divergence_stops_cleanly_and_keeps_checkpoints(run_cli, tmp_path):
    proc = run_cli(
        "train",
        "trainer.max_steps=200",
        "optimizer.lr=1e6",
        "checkpoint.schedule=every",
        "checkpoint.every=1",
        *TINY,
    )
    assert proc.returncode == 0, proc.stderr
    run_dir = _run_dir(tmp_path / "results")
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "diverged"
    assert 0 < record["diverged_at_step"] < 200
    steps = [s for s, _ in RunDir(run_dir).checkpoints()]
    assert steps and steps[-1] <= record["diverged_at_step"]
    for _, path in RunDir(run_dir).checkpoints():
        weights = load_checkpoint(path)["model"]
        assert all(torch.isfinite(w).all() for w in weights.values())
    assert "diverged" in proc.stderr


def test_checkpoint_with_pickled_object_is_refused(tmp_path):
    import argparse

    path = tmp_path / "step_00000000.pt"
    # Any non-allowlisted class would run arbitrary code on unpickling; a Namespace stands in for one.
    torch.save(
        {"format": "hessdyn-checkpoint-v1", "step": 0, "model": {}, "evil": argparse.Namespace(x=1)}, path
    )
    with pytest.raises(HessdynError, match="arbitrary Python objects") as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)


@pytest.mark.slow
def test_changed_config_never_overwrites_a_run(run_cli, tmp_path):
    run_cli("train", "trainer.max_steps=20", *TINY, "hydra.run.dir=" + str(tmp_path / "run"), check=True)
    before = {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()}
    proc = run_cli(
        "train", "trainer.max_steps=20", "optimizer.lr=0.5", *TINY, "hydra.run.dir=" + str(tmp_path / "run")
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "already holds a run of another config" in proc.stderr
    assert "optimizer.lr: 0.1 -> 0.5" in proc.stderr
    after = {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()}
    assert before == after
    again = run_cli("train", "trainer.max_steps=20", *TINY, "hydra.run.dir=" + str(tmp_path / "run"))
    assert again.returncode == 0 and "already completed" in again.stderr


def test_log_checkpoint_schedule_is_log_spaced_and_complete():
    from hessdyn.config.schema import CheckpointConfig, CheckpointSchedule
    from hessdyn.training.checkpoints import checkpoint_steps

    steps = checkpoint_steps(CheckpointConfig(schedule=CheckpointSchedule.log, num=10), 1000)
    assert steps[0] == 0 and steps[-1] == 1000 and steps == sorted(set(steps))
    gaps = [b / a for a, b in zip(steps[1:], steps[2:], strict=False)]
    assert max(gaps) / min(gaps) < 2.5  # roughly geometric
    every = checkpoint_steps(CheckpointConfig(schedule=CheckpointSchedule.every, every=30), 100)
    assert every == [0, 30, 60, 90, 100]
    with pytest.warns(UserWarning, match=r"beyond the last step 40 are ignored: \[50\]"):
        listed = checkpoint_steps(CheckpointConfig(schedule=CheckpointSchedule.list, steps=[5, 50]), 40)
    assert listed == [0, 5, 40]
