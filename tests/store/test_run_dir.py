"""Run and analysis folders: paths, run.json, checkpoints, the run finder and the "done" rules."""

from __future__ import annotations

import pytest
import torch

from hessdyn.config.errors import HessdynError
from hessdyn.store import (
    AnalysisDir,
    RunDir,
    RunStatus,
    find_run_dirs,
    is_run_dir,
    load_checkpoint,
    sweep_report_dir,
)


def test_paths_of_a_run_folder(tmp_path):
    run = RunDir(tmp_path / "r")
    assert run.run_json == tmp_path / "r" / "run.json"
    assert run.train_csv == tmp_path / "r" / "metrics" / "train.csv"
    assert run.hydra_config == tmp_path / "r" / ".hydra" / "config.yaml"
    assert run.checkpoint_path(12) == tmp_path / "r" / "checkpoints" / "step_00000012.pt"
    assert run.analysis().path == tmp_path / "r" / "analysis"
    assert run.analysis("quick").path == tmp_path / "r" / "analysis-quick"
    assert run.analysis().eigvecs_path(3) == tmp_path / "r" / "analysis" / "eigvecs" / "step_00000003.pt"
    assert run.analysis().table_path("spectrum") == tmp_path / "r" / "analysis" / "spectrum.csv"
    assert sweep_report_dir(tmp_path) == tmp_path / "report"
    with pytest.raises(ValueError, match="lives in an analysis folder"):
        run.metrics_table("summary")


def test_run_record_and_status(tmp_path):
    run = RunDir(tmp_path)
    assert run.read_record() is None and run.status() is RunStatus.UNKNOWN
    run.write_record({"status": RunStatus.RUNNING, "steps": 3})
    record = run.read_record()
    assert record["status"] == "running" and record["steps"] == 3 and "updated" in record
    with run.lock("hessdyn train"):  # a running run's process holds its folder's lock
        assert run.status() is RunStatus.RUNNING and run.status().in_means and not run.status().finished
    # the process is gone (killed): the run is interrupted, resumable, not averaged in
    assert run.status() is RunStatus.INTERRUPTED and not run.status().in_means
    assert not run.status().finished and run.read_record()["status"] == "running"
    with pytest.raises(ValueError, match="bad status 'unknown'"):
        run.write_record({"status": "unknown"})
    with pytest.raises(ValueError, match="bad status 'done'"):
        run.write_record({"status": "done"})
    assert {s for s in RunStatus if s.finished} == {RunStatus.COMPLETED, RunStatus.DIVERGED}
    assert {s for s in RunStatus if s.broken} == {RunStatus.DIVERGED, RunStatus.FAILED, RunStatus.INTERRUPTED}
    assert RunStatus.parse("weird") is RunStatus.UNKNOWN and str(RunStatus.FAILED) == "failed"


def test_checkpoints_are_listed_in_step_order_without_temporaries(tmp_path):
    run = RunDir(tmp_path)
    assert run.checkpoints() == [] and not run.has_checkpoint_files()
    for step in (10, 2, 0):
        run.save_checkpoint({"step": step, "config_hash": "h", "model": {"w": torch.ones(2) * step}})
    (run.checkpoints_dir / ".step_00000011.pt.abc.tmp").write_bytes(b"half")
    assert run.checkpoint_steps() == [0, 2, 10]
    assert torch.equal(load_checkpoint(run.checkpoint_path(10))["model"]["w"], torch.full((2,), 10.0))
    run.remove_stale_temporaries()
    assert sorted(p.name for p in run.checkpoints_dir.iterdir()) == [
        "step_00000000.pt",
        "step_00000002.pt",
        "step_00000010.pt",
    ]
    torch.save({"step": 1}, run.checkpoint_path(1))
    with pytest.raises(HessdynError, match="is not a hessdyn checkpoint"):
        load_checkpoint(run.checkpoint_path(1))


def test_one_run_finder_for_every_command(tmp_path):
    def run_json(path):
        RunDir(path).write_record({"status": "completed"})

    run_json(tmp_path / "a")
    run_json(tmp_path / "group" / "b")
    # a job that died before writing run.json: its training config identifies it
    hydra = RunDir(tmp_path / "c").hydra_config
    hydra.parent.mkdir(parents=True)
    hydra.write_text("trainer: {max_steps: 3}\n")
    # not runs: a report's Hydra folder, hidden folders, a run's own folders
    other = RunDir(tmp_path / "report").hydra_config
    other.parent.mkdir(parents=True)
    other.write_text("sweep_dir: x\n")
    run_json(tmp_path / ".hidden" / "d")
    run_json(tmp_path / "a" / "analysis" / "e")
    # a run whose folder name starts like an analysis folder is still a run
    run_json(tmp_path / "analysis.top_k=3,seed=0")
    found = [p.relative_to(tmp_path).as_posix() for p in find_run_dirs(tmp_path)]
    assert found == ["a", "analysis.top_k=3,seed=0", "c", "group/b"]
    assert find_run_dirs(tmp_path / "a") == [tmp_path / "a"]
    assert is_run_dir(tmp_path / "c") and not is_run_dir(tmp_path / "report")


def test_analysis_steps_are_done_when_their_record_follows_their_vectors(tmp_path):
    adir = AnalysisDir(tmp_path)
    adir.save_vectors(0, {"step": 0, "eigenvectors": torch.eye(2)})
    assert not adir.is_done(0)  # vectors alone: killed before the rows were committed
    adir.write_step_record(0, {"summary": [{"step": 0}]})
    adir.mark_skipped(5, "not finite")
    assert adir.is_done(0) and adir.is_done(5) and not adir.is_done(9)
    assert adir.analyzed([0, 5, 9]) == [0] and adir.skip_reason(5) == "not finite"
    assert not adir.is_complete("f", [0, 5])
    adir.write_meta({"status": "complete", "fingerprint": "f", "selected_steps": [0, 5]})
    assert adir.is_complete("f", [0, 5])
    assert not adir.is_complete("g", [0, 5]) and not adir.is_complete("f", [0, 5, 9])
    adir.forget_step(0)
    assert not adir.is_complete("f", [0, 5])
