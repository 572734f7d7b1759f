"""``hessdyn analyze`` trusts no file it reads (issue 14): a checkpoint with flipped bits, a config file
that is not the run's, tables deleted or cut after a finished analysis, a damaged per-checkpoint record,
and a sweep in which one run raises. Each check is compared with what an intact run gives."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from hessdyn.analysis.runner import analyze_many, analyze_run
from hessdyn.config.errors import HessdynError
from hessdyn.store import DamagedFile, RunDir
from hessdyn.training.loop import train
from tests.faults.corrupt import cut, flip_tensor_bytes
from tests.training.helpers import typed_config

TRAIN = [
    "model.widths=[8]",
    "trainer.max_steps=20",
    "trainer.batch_size=64",
    "checkpoint.schedule=list",
    "checkpoint.steps=[10]",
    "trainer.log_every=10",
    "dataset.n_train=200",
    "dataset.n_test=50",
]
ANALYSIS = [
    "analysis.metrics=[spectrum]",
    "analysis.top_k=3",
    "analysis.bottom_k=0",
    "analysis.hessian_set=100",
    "analysis.tol=1e-6",
]


def _settings():
    return typed_config(ANALYSIS, config_name="analyze").analysis


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    runs = {}
    for opt in ("sgd", "adam"):
        train(typed_config([*TRAIN, f"optimizer={opt}", "optimizer.lr=0.01"]), root / opt)
        runs[opt] = root / opt
    return runs


@pytest.fixture(scope="module")
def analyzed(trained, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("analyzed") / "run"
    shutil.copytree(trained["adam"], run)
    analyze_run(run, _settings(), progress=False)
    return run


def _copy(run: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(run, out)
    return out


def test_a_checkpoint_with_flipped_bits_is_refused_not_analyzed(trained, tmp_path):
    """It used to be analyzed silently (lambda_max 2.4e37 instead of 13.4)."""
    run = _copy(trained["adam"], tmp_path)
    damaged = RunDir(run).checkpoint_path(10)
    flip_tensor_bytes(damaged)
    with pytest.raises(DamagedFile) as info:
        analyze_run(run, _settings(), progress=False)
    line = str(info.value)
    assert "\n" not in line and str(damaged) in line and "CRC-32 mismatch" in line
    assert damaged.is_file()  # kept for the user to restore or move away
    spectrum = run / "analysis" / "spectrum.csv"  # the checkpoints before it are analyzed, not it
    assert not spectrum.exists() or 10 not in set(pd.read_csv(spectrum)["step"])
    assert not RunDir(run).analysis().is_done(10)


def test_a_config_file_of_another_optimizer_is_refused(trained, tmp_path):
    """An Adam run whose .hydra/config.yaml says SGD used to be analyzed with SGD's thresholds."""
    adam, sgd = _copy(trained["adam"], tmp_path), trained["sgd"]
    shutil.copy(RunDir(sgd).hydra_config, RunDir(adam).hydra_config)
    with pytest.raises(HessdynError, match=r"does not describe the config this run was trained with") as info:
        analyze_run(adam, _settings(), progress=False)
    assert "optimizer.name: 'adam' -> 'sgd'" in str(info.value) and "\n" not in str(info.value)
    assert not (adam / "analysis" / "steps").exists()


def test_a_config_file_with_other_widths_is_one_line_not_a_traceback(trained, tmp_path):
    run = _copy(trained["adam"], tmp_path)
    config = RunDir(run).hydra_config
    config.write_text(config.read_text().replace("- 8", "- 16"))
    with pytest.raises(HessdynError, match=r"model.widths: \[8\] -> \[16\]"):
        analyze_run(run, _settings(), progress=False)


@pytest.mark.parametrize("damage", ["delete", "cut", "drop_row"])
def test_a_damaged_table_of_a_finished_analysis_is_rebuilt(analyzed, tmp_path, damage, caplog):
    """Deleting or cutting spectrum.csv used to leave "complete already" and the damaged table."""
    run = _copy(analyzed, tmp_path)
    table = run / "analysis" / "spectrum.csv"
    want = table.read_bytes()
    if damage == "delete":
        table.unlink()
    elif damage == "cut":
        cut(table, 0.6)
    else:
        table.write_bytes(b"".join(want.splitlines(keepends=True)[:-1]))
    outcome = analyze_run(run, _settings(), progress=False)
    assert outcome.analyzed == [] and outcome.status == "complete"  # rebuilt from the per-step records
    assert table.read_bytes() == want
    if damage != "delete":
        assert any("spectrum.csv failed its check" in r.getMessage() for r in caplog.records)
    again = analyze_run(run, _settings(), progress=False)
    assert again.analyzed == [] and table.read_bytes() == want


def test_a_damaged_eigenvector_file_is_computed_again(analyzed, tmp_path):
    run = _copy(analyzed, tmp_path)
    adir = RunDir(run).analysis()
    want = torch.load(adir.eigvecs_path(10), weights_only=True)
    cut(adir.eigvecs_path(10), 0.5)
    assert adir.step_problem(10) is not None
    outcome = analyze_run(run, _settings(), progress=False)
    assert outcome.analyzed == [10]
    got = torch.load(adir.eigvecs_path(10), weights_only=True)
    assert torch.equal(got["eigenvalues"], want["eigenvalues"])
    pd.testing.assert_frame_equal(
        pd.read_csv(run / "analysis" / "spectrum.csv").drop(columns=["wall_s"], errors="ignore"),
        pd.read_csv(analyzed / "analysis" / "spectrum.csv").drop(columns=["wall_s"], errors="ignore"),
    )


def test_a_sweep_goes_on_past_a_run_that_raises_anything(trained, tmp_path):
    """analyze sweep_dir= used to stop at the first run raising an error other than the project's own."""
    runs = [_copy(trained["sgd"], tmp_path / "a"), _copy(trained["adam"], tmp_path / "b")]

    def settings_of(run: Path):
        if run == runs[0]:
            raise RuntimeError("a bug in one run\nwith a second line")
        return _settings()

    outcomes = analyze_many(runs, settings_of, progress=False)
    assert outcomes[runs[0]] == "RuntimeError: a bug in one run"
    assert outcomes[runs[1]].status == "complete" and (runs[1] / "analysis" / "spectrum.csv").is_file()
