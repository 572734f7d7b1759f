"""How `hessdyn analyze` recognizes a distributed launch and refuses the ones it cannot run: SLURM's task
variables as submitit's launcher sets them, the sweep config with hydra.launcher.tasks_per_node, and one
line each for analysis.distributed outside a launch, several processes without it, more ranks than
examples, metric groups that are not distributed, and batch-norm shards that would change the batches."""

from __future__ import annotations

import random
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from hessdyn.analysis.command import analyze_output_dir, check_launch, launcher_tasks
from hessdyn.analysis.distributed import check_distributable
from hessdyn.analysis.settings import settings_fingerprint
from hessdyn.cli import main
from hessdyn.commands.preflight import compose_jobs
from hessdyn.config.errors import ConfigValueError, HessdynError
from hessdyn.curvature import HessianSet
from hessdyn.parallel.launch import launch_rank, launch_world_size, slurm_launch_variables
from tests.training.helpers import typed_config

SLURM_TASK = {
    "SLURM_JOB_ID": "4242",
    "SLURM_PROCID": "3",
    "SLURM_LOCALID": "1",
    "SLURM_NTASKS": "4",
    "SLURM_JOB_NUM_NODES": "2",
    "SLURM_JOB_NODELIST": "gpu[07-08]",
}


def test_slurm_tasks_become_torchrun_variables() -> None:
    got = slurm_launch_variables(SLURM_TASK)
    port = random.Random("4242").randint(20000, 60000)  # the same on every task of the job
    assert got == {
        "RANK": "3",
        "WORLD_SIZE": "4",
        "LOCAL_RANK": "1",
        "MASTER_ADDR": "gpu07",
        "MASTER_PORT": str(port),
    }
    assert launch_rank(SLURM_TASK) == 3 and launch_world_size(SLURM_TASK) == 4


def test_one_slurm_task_or_a_torchrun_launch_is_not_translated() -> None:
    assert slurm_launch_variables({**SLURM_TASK, "SLURM_NTASKS": "1"}) == {}
    torchrun = {**SLURM_TASK, "RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "h", "MASTER_PORT": "1"}
    assert slurm_launch_variables(torchrun) == {}
    assert launch_rank(torchrun) == 1 and launch_world_size(torchrun) == 2
    assert launch_rank({}) == 0 and launch_world_size({}) == 1


def test_ranks_other_than_0_get_a_scratch_output_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert analyze_output_dir(str(run), None, "default") == str(run.resolve() / "analysis")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    scratch = Path(analyze_output_dir(str(run), None, "default"))
    assert run.resolve() not in scratch.parents and "rank1" in scratch.name


def test_the_submitit_sweep_config_gives_the_tasks_per_job(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    overrides = [f"run_dir={tmp_path / 'run'}", "analysis.distributed=true", "hydra/launcher=submitit_slurm"]
    (cfg,) = compose_jobs("analyze", [*overrides, "hydra.launcher.tasks_per_node=4"], True)
    assert launcher_tasks(cfg) == 4
    (cfg,) = compose_jobs(
        "analyze", [*overrides, "hydra.launcher.tasks_per_node=2", "hydra.launcher.nodes=3"], True
    )
    assert launcher_tasks(cfg) == 6
    (cfg,) = compose_jobs("analyze", overrides[:2], True)  # the basic launcher: one process per job
    assert launcher_tasks(cfg) == 1


@pytest.mark.parametrize(
    ("distributed", "multirun", "tasks", "world", "refused"),
    [
        (True, False, 1, 1, "needs a distributed launch"),  # a plain `hessdyn analyze`
        (True, True, 1, 1, "needs a distributed launch"),  # a sweep whose launcher starts one task per job
        (True, True, 4, 1, None),  # submitit with tasks_per_node=4, checked on the login node
        (True, False, 1, 2, None),  # torchrun
        (False, False, 1, 2, "launched as 2 processes"),  # torchrun without the key
        (False, True, 2, 1, "launched as 2 processes"),  # tasks_per_node=2 without the key
        (False, False, 1, 1, None),
    ],
)
def test_the_launch_must_fit_analysis_distributed(
    distributed: bool, multirun: bool, tasks: int, world: int, refused: str | None
) -> None:
    if refused is None:
        check_launch(distributed, multirun, tasks, world)
        return
    with pytest.raises(ConfigValueError, match=refused) as err:
        check_launch(distributed, multirun, tasks, world)
    assert "analysis.distributed" in str(err.value) and "\n" not in str(err.value)


def test_analyze_with_distributed_outside_a_launch_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for key in ("RANK", "WORLD_SIZE", "SLURM_PROCID", "SLURM_NTASKS"):
        monkeypatch.delenv(key, raising=False)
    run = tmp_path / "run"
    run.mkdir()
    assert main(["analyze", f"run_dir={run}", "analysis.distributed=true"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "analysis.distributed" in err[0] and "torchrun" in err[0]
    assert list(run.iterdir()) == []  # nothing written


def test_metric_groups_that_are_not_distributed_are_refused_in_the_config() -> None:
    with pytest.raises(ConfigValueError, match="reparam"):
        typed_config(
            ["analysis.distributed=true", "analysis.metrics=[spectrum,reparam]"], config_name="analyze"
        )
    with pytest.raises(ConfigValueError, match="noise"):
        typed_config(
            ["analysis.distributed=true", "analysis.metrics=[spectrum,noise]"], config_name="analyze"
        )


def _context(model: nn.Module, size: int, train_batch: int) -> SimpleNamespace:
    """What check_distributable reads of a RunContext."""
    hset = HessianSet(torch.zeros(size, 3), torch.zeros(size, dtype=torch.long), torch.arange(size))
    cfg = typed_config(["optimizer=sgd"])
    return SimpleNamespace(
        hessian_set=hset, new_model=lambda: model, config=cfg, train_batch_size=train_batch, run_dir="RUN"
    )


def _settings(*extra: str):  # noqa: ANN202 - AnalysisConfig
    return typed_config(list(extra), config_name="analyze").analysis


def test_more_ranks_than_examples_is_one_line() -> None:
    ctx = _context(nn.Linear(3, 2), 3, 3)
    check_distributable(ctx, _settings(), 3)  # type: ignore[arg-type]
    with pytest.raises(HessdynError, match="4 ranks for a Hessian set of 3 examples"):
        check_distributable(ctx, _settings(), 4)  # type: ignore[arg-type]
    # a run's own settings (settings_from_run=true) are not checked by the config for distributed groups
    with pytest.raises(HessdynError, match="noise need per-example gradients"):
        check_distributable(ctx, _settings("analysis.metrics=[spectrum,noise]"), 2)  # type: ignore[arg-type]


def test_batch_norm_needs_a_whole_batch_per_rank() -> None:
    bn = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    # eval-mode analysis: the stability Hessian takes batches of the training batch size (40 of 100: 3)
    check_distributable(_context(bn, 100, 40), _settings(), 3)  # type: ignore[arg-type]
    with pytest.raises(HessdynError, match="3 batch\\(es\\) for 4 ranks"):
        check_distributable(_context(bn, 100, 40), _settings(), 4)  # type: ignore[arg-type]
    # batch statistics over the whole set (no analysis.batch_size) cannot be split at all
    with pytest.raises(HessdynError, match="analysis.batch_size"):
        check_distributable(_context(bn, 100, 100), _settings("analysis.batchnorm=train"), 2)  # type: ignore[arg-type]
    check_distributable(  # type: ignore[arg-type]
        _context(bn, 100, 50), _settings("analysis.batchnorm=train", "analysis.batch_size=50"), 2
    )


def test_distributed_does_not_change_the_settings_fingerprint() -> None:
    """One analysis folder holds results of one and of several processes alike (they are the same numbers),
    so a distributed analysis killed halfway can be completed by one process, and the other way round."""
    assert settings_fingerprint(_settings()) == settings_fingerprint(_settings("analysis.distributed=true"))


def test_hessdyn_run_refuses_a_distributed_analysis_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["run", "experiment=quickstart", f"out_dir={tmp_path}", "analysis.distributed=true"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "analysis.distributed" in err[0] and "torchrun" in err[0]
    assert list(tmp_path.iterdir()) == []
