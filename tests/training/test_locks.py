"""One writer per folder: a second hessdyn process on the same run gets one clear line and writes nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from hessdyn.analysis.runner import analyze_run
from hessdyn.config.errors import DirectoryInUse
from hessdyn.store import LOCK_NAME, exclusive_dir
from hessdyn.training.loop import train
from tests.training.helpers import typed_config

TINY = ["model.widths=[8]", "trainer.max_steps=6", "checkpoint.schedule=list", "checkpoint.steps=[3]"]


def test_a_held_run_is_refused_and_left_untouched(tmp_path):
    run = tmp_path / "run"
    train(typed_config(TINY), run)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != LOCK_NAME}
    with exclusive_dir(run, "hessdyn train"):
        with pytest.raises(
            DirectoryInUse,
            match=rf"in use: hessdyn train \(pid {os.getpid()} on .*\) is still writing there; wait for it",
        ):
            train(typed_config(TINY), run)
    settings = typed_config(["analysis.top_k=2", "analysis.hessian_set=64"], config_name="analyze").analysis
    with exclusive_dir(run / "analysis", "hessdyn analyze"):
        with pytest.raises(DirectoryInUse, match=r"in use: hessdyn analyze \(pid"):
            analyze_run(run, settings, progress=False)
    after = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != LOCK_NAME}
    assert after == before  # nothing written, nothing overwritten
    assert json.loads((run / "run.json").read_text())["status"] == "completed"
    assert analyze_run(run, settings, progress=False).status == "complete"  # free again once released


def test_the_lock_dies_with_its_holder_even_on_kill_9(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from hessdyn.store import exclusive_dir\n"
            "with exclusive_dir(sys.argv[1], 'test'):\n    print('held', flush=True); time.sleep(60)",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(DirectoryInUse, match=rf"in use: test \(pid {holder.pid} on .*then rerun second"):
            with exclusive_dir(tmp_path, "second"):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    deadline = time.time() + 10
    while True:  # the kernel releases the flock with the process; no stale lock file to clean up
        try:
            with exclusive_dir(tmp_path, "third"):
                break
        except DirectoryInUse:
            assert time.time() < deadline
            time.sleep(0.1)


def test_a_lock_never_creates_a_missing_run_directory(tmp_path):
    with pytest.raises(FileNotFoundError):
        with exclusive_dir(tmp_path / "no" / "such", "x"):
            pass
    assert not (tmp_path / "no").exists()
