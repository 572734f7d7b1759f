"""Training trusts no file it resumes from (issue 14): damaged checkpoints, train.csv cut mid-line or with
rows lost, missing checkpoints of a finished run; Ctrl-C is "interrupted", the divergence row is written
once. Each case ends with the weights and the table of an uninterrupted run."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from hessdyn import io
from hessdyn.commands.jobs import run_job
from hessdyn.store import RunDir, RunStatus, load_checkpoint
from hessdyn.training import loop
from hessdyn.training.loop import train
from tests.faults.corrupt import cut, flip_tensor_bytes
from tests.training.helpers import typed_config

TINY = [
    "model.widths=[8]",
    "trainer.max_steps=40",
    "trainer.batch_size=64",
    "trainer.log_every=3",
    "trainer.eval_every=10",
    "checkpoint.schedule=every",
    "checkpoint.every=8",
    "dataset.n_train=300",
    "dataset.n_test=60",
    "optimizer=adam",
    "optimizer.lr=0.01",
]
KEYS = ["step", "split", "source"]
VALUES = ["loss", "accuracy", "lr", "grad_norm", "update_norm", "param_norm"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("reference") / "run"
    train(typed_config(TINY), run)
    return run


def _interrupted(tmp_path: Path, monkeypatch, after_checkpoints: int) -> Path:
    """A run stopped by Ctrl-C right after its ``after_checkpoints``-th checkpoint."""
    run = tmp_path / "run"
    saved = loop._Session.checkpoint
    count = {"n": 0}

    def checkpoint_then_interrupt(self):
        saved(self)
        count["n"] += 1
        if count["n"] == after_checkpoints:
            raise KeyboardInterrupt

    monkeypatch.setattr(loop._Session, "checkpoint", checkpoint_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        train(typed_config(TINY), run)
    monkeypatch.setattr(loop._Session, "checkpoint", saved)
    return run


def _assert_same_as(reference: Path, run: Path) -> None:
    want, got = RunDir(reference), RunDir(run)
    assert want.checkpoint_steps() == got.checkpoint_steps()
    for (_, a), (_, b) in zip(want.checkpoints(), got.checkpoints(), strict=True):
        wa, wb = load_checkpoint(a)["model"], load_checkpoint(b)["model"]
        assert all(torch.equal(wa[k], wb[k]) for k in wa)
    ref, table = pd.read_csv(want.train_csv), pd.read_csv(got.train_csv)
    assert not table.duplicated(KEYS).any() and len(table) == len(ref)
    pd.testing.assert_frame_equal(table[KEYS + VALUES], ref[KEYS + VALUES])
    assert got.read_record()["status"] == "completed"


def test_ctrl_c_records_interrupted_and_the_rerun_resumes(tmp_path, monkeypatch, reference):
    """Ctrl-C recorded "failed" for a run that is resumable."""
    run = _interrupted(tmp_path, monkeypatch, after_checkpoints=3)
    record = RunDir(run).read_record()
    assert record["status"] == "interrupted" and record["error"] == "interrupted by SIGINT at step 16"
    assert RunDir(run).status() is RunStatus.INTERRUPTED and not RunStatus.INTERRUPTED.finished
    train(typed_config(TINY), run)
    _assert_same_as(reference, run)
    assert RunDir(run).read_record()["resumes"] == [16]


def test_resume_sets_a_damaged_checkpoint_aside_and_never_marks_the_run_diverged(
    tmp_path, monkeypatch, reference
):
    """Defect 3: train resumed from a checkpoint with flipped bits and marked the run diverged for good."""
    run = _interrupted(tmp_path, monkeypatch, after_checkpoints=4)
    last = RunDir(run).checkpoint_path(24)
    flip_tensor_bytes(last)
    train(typed_config(TINY), run)
    assert RunDir(run).read_record()["resumes"] == [16]  # from the intact checkpoint before it
    assert (last.parent / "step_00000024.pt.damaged").is_file()  # kept, out of the way
    _assert_same_as(reference, run)


def test_train_csv_cut_mid_line_is_not_read_as_numbers(tmp_path, monkeypatch, reference):
    """A row cut mid-number has the table's width (``...,0.9`` of ``...,0.9513``) and was kept."""
    run = _interrupted(tmp_path, monkeypatch, after_checkpoints=3)
    csv = RunDir(run).train_csv
    last_row = pd.read_csv(reference / "metrics" / "train.csv").iloc[-1]
    text = csv.read_text()
    csv.write_text(text + ",".join(str(v) for v in last_row.tolist())[:-3])  # no newline: cut
    train(typed_config(TINY), run)
    _assert_same_as(reference, run)


def test_rows_lost_before_the_resume_point_are_written_again(tmp_path, monkeypatch, reference):
    run = _interrupted(tmp_path, monkeypatch, after_checkpoints=4)
    csv = RunDir(run).train_csv
    lines = csv.read_text().splitlines(keepends=True)
    csv.write_text("".join(lines[:5] + lines[8:]))  # three rows before step 24 gone
    train(typed_config(TINY), run)
    assert RunDir(run).read_record()["resumes"] == [0]  # the only checkpoint whose rows are all there
    _assert_same_as(reference, run)


def test_a_finished_run_missing_a_checkpoint_is_trained_again_to_write_it(tmp_path, reference):
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    RunDir(run).checkpoint_path(16).unlink()  # moved away as damaged, as the analysis says to
    train(typed_config(TINY), run)
    _assert_same_as(reference, run)
    cut(RunDir(run).train_csv, 0.7)  # a finished run's table cut short is written again too
    train(typed_config(TINY), run)
    _assert_same_as(reference, run)


def test_the_divergence_step_row_is_written_once(tmp_path):
    """With a batch row due at the divergence step, train.csv held two rows for (step, train, batch)."""
    run = tmp_path / "run"
    cfg = typed_config(
        [
            "model.widths=[16]",
            "trainer.max_steps=100",
            "optimizer.lr=1e6",
            "trainer.log_every=1",
            "checkpoint.num=3",
        ]
    )
    result = train(cfg, run)
    assert result.status == "diverged"
    table = pd.read_csv(RunDir(run).train_csv)
    assert not table.duplicated(KEYS).any()
    batch = table[table["source"] == "batch"]
    assert batch["step"].max() == RunDir(run).read_record()["diverged_at_step"]


def test_a_full_disk_mid_checkpoint_keeps_every_file_and_the_rerun_resumes(tmp_path, monkeypatch, reference):
    """A checkpoint write that fails half-way (ENOSPC) leaves no partial file; the earlier ones are intact."""
    run, saved, calls = tmp_path / "run", io.torch.save, {"n": 0}

    def save_until_the_disk_is_full(obj, fh):
        calls["n"] += 1
        if calls["n"] == 4:
            fh.write(b"PK\x03\x04 half a checkpoint")
            raise OSError(errno.ENOSPC, "No space left on device", str(fh.name))
        saved(obj, fh)

    monkeypatch.setattr(io.torch, "save", save_until_the_disk_is_full)
    with pytest.raises(OSError, match="No space left"):
        train(typed_config(TINY), run)
    monkeypatch.setattr(io.torch, "save", saved)
    assert RunDir(run).checkpoint_steps() == [0, 8, 16]
    assert not [p for p in RunDir(run).checkpoints_dir.iterdir() if p.name.endswith(".tmp")]
    train(typed_config(TINY), run)
    assert RunDir(run).read_record()["resumes"] == [16]
    _assert_same_as(reference, run)


def test_a_full_disk_is_one_line_saying_what_to_do(capsys):
    def body():
        raise OSError(errno.ENOSPC, "No space left on device", "/results/run/checkpoints/step_8.pt")

    with pytest.raises(SystemExit) as info:
        run_job("train", body)
    assert info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith(
        "hessdyn train: error: no space left on the device writing /results/run/checkpoints/step_8.pt; "
        "free some space and rerun the same command"
    )
