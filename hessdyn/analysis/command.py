"""``hessdyn analyze run_dir=PATH | sweep_dir=PATH [analysis.*=...]``: the Hydra task and its pre-launch check."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from hessdyn.commands.jobs import job_thread_policy, run_job
from hessdyn.config import to_object
from hessdyn.config.errors import ConfigValueError, HessdynError
from hessdyn.curvature.distributed import RankFailure, RanksDiverged
from hessdyn.io import check_writable
from hessdyn.parallel import DistributedContext, distributed_session
from hessdyn.parallel.launch import launch_rank, launch_world_size
from hessdyn.runtime import resolve_device
from hessdyn.store import RunDir, find_run_dirs, is_run_dir, sweep_analyze_dir
from hessdyn.training.run_config import load_run_config

log = logging.getLogger("hessdyn.analyze")


def analyze_output_dir(run_dir: str | None, sweep_dir: str | None, name: str) -> str:
    """Hydra's output folder of an analyze job: the run's analysis folder, or SWEEP/analyze[-name]; for the
    ranks other than 0 of a distributed launch a scratch folder, so that they never touch the run folder
    (Hydra writes its config and the job's log into this folder)."""
    rank = launch_rank()
    if rank != 0:
        return str(Path(tempfile.gettempdir()) / f"hessdyn-analyze-rank{rank}-{os.getpid()}")
    if run_dir:
        return str(RunDir(Path(run_dir).resolve()).analysis(name).path)
    if sweep_dir:
        return str(sweep_analyze_dir(Path(sweep_dir).resolve(), name))
    return str(Path(".hessdyn-analyze-unset").resolve())


def register_analyze_resolvers() -> None:
    if not OmegaConf.has_resolver("hessdyn.analyze_dir"):
        OmegaConf.register_new_resolver("hessdyn.analyze_dir", analyze_output_dir)


def target_runs(run_dir: str | None, sweep_dir: str | None) -> list[Path]:
    if bool(run_dir) == bool(sweep_dir):
        raise HessdynError("pass exactly one of run_dir=PATH (one run) or sweep_dir=PATH (every run inside)")
    if run_dir:
        path = Path(run_dir)
        if path.exists() and not path.is_dir():
            raise HessdynError(f"run_dir {path} is a file; pass the run's folder (written by hessdyn train)")
        if not path.is_dir():
            raise HessdynError(f"run_dir {path} does not exist; pass a folder written by hessdyn train")
        if not is_run_dir(path):
            raise HessdynError(
                f"{path} is not a hessdyn run (no run.json or .hydra/config.yaml of a training run); "
                "for a folder of runs use sweep_dir="
            )
        return [path]
    assert sweep_dir  # exactly one of the two is given
    path = Path(sweep_dir)
    if path.exists() and not path.is_dir():
        raise HessdynError(f"sweep_dir {path} is a file; pass the folder that holds the runs")
    if not path.is_dir():
        raise HessdynError(f"sweep_dir {path} does not exist")
    runs = find_run_dirs(path)
    if not runs:
        raise HessdynError(f"no hessdyn runs (folders with run.json) found under {path}")
    return runs


def run_settings(typed, run: Path):  # noqa: ANN001, ANN201 - AnalyzeConfig -> AnalysisConfig
    """The analysis settings for ``run``: the command's, or the run's own (``settings_from_run=true``)."""
    if typed.settings_from_run:
        return load_run_config(run).analysis
    return typed.analysis


def launcher_tasks(cfg: DictConfig) -> int:
    """Processes per job of the sweep's launcher: nodes × tasks_per_node for the submitit launchers, else 1."""
    launcher = OmegaConf.select(cfg, "hydra.launcher", default=None)
    if launcher is None or "tasks_per_node" not in launcher:
        return 1
    return int(launcher.get("tasks_per_node") or 1) * int(launcher.get("nodes") or 1)


def check_launch(distributed: bool, multirun: bool, tasks: int, world_size: int) -> None:
    """One line unless the launch fits analysis.distributed: a distributed analysis needs several processes
    (torchrun, or a sweep whose launcher starts several SLURM tasks per job); several processes need it."""
    if distributed and world_size == 1 and not (multirun and tasks > 1):
        raise ConfigValueError(
            "analysis.distributed",
            "true needs a distributed launch: torchrun --nproc_per_node=N -m hessdyn analyze ..., or "
            "hessdyn analyze -m ... hydra/launcher=submitit_slurm hydra.launcher.tasks_per_node=N (N > 1); "
            "drop it for one process",
        )
    if not distributed and (world_size > 1 or (multirun and tasks > 1)):
        n = world_size if world_size > 1 else tasks
        raise ConfigValueError(
            "analysis.distributed",
            f"false, but the analysis is launched as {n} processes (torchrun or SLURM tasks), which would "
            "each analyze the whole run: pass analysis.distributed=true, or start one process per job",
        )


def check_analyze_job(cfg: DictConfig, multirun: bool) -> None:
    from hessdyn.analysis.runner import check_settings

    typed = to_object(cfg)
    check_launch(typed.analysis.distributed, multirun, launcher_tasks(cfg), launch_world_size())
    resolve_device(typed.analysis.device)
    for run in target_runs(typed.run_dir, typed.sweep_dir):
        try:
            settings = run_settings(typed, run)
            check_writable(RunDir(run).analysis(settings.name).path, "run_dir")
            check_settings(RunDir(run).analysis(settings.name), settings, force=typed.force)
        except HessdynError:
            if not typed.sweep_dir:
                raise
            # a sweep goes on past one bad run: its analysis names it, and the command fails at the end


@contextmanager
def analysis_context(distributed: bool, device: str) -> Iterator[DistributedContext]:
    """This process's place in the analysis: its rank of a distributed launch (process groups joined for
    the job and left after it), or the single-process context."""
    check_launch(distributed, False, 1, launch_world_size())
    if not distributed:
        yield DistributedContext.single()
        return
    with distributed_session(device) as ctx:
        if not ctx.is_writer:  # the same progress lines from every rank: rank 0's are enough
            logging.getLogger("hessdyn").setLevel(logging.WARNING)
        try:
            yield ctx
        except (RankFailure, RanksDiverged) as exc:  # one line; rank 0's finished checkpoints stay on disk
            raise HessdynError(
                f"{exc}; the run folder keeps the finished checkpoints, rerun to complete it"
            ) from exc


def analyze_task(cfg: DictConfig) -> dict:
    from hessdyn.analysis.runner import analyze_many

    def body() -> dict:
        typed = to_object(cfg)
        policy = job_thread_policy(typed.runtime)
        runs = target_runs(typed.run_dir, typed.sweep_dir)
        with analysis_context(typed.analysis.distributed, typed.analysis.device.value) as dctx:
            outcomes = analyze_many(
                runs,
                lambda run: run_settings(typed, run),
                data_root=typed.data_root,
                force=typed.force,
                dist=dctx,
                threads=policy,
            )
        failed = {str(k): v for k, v in outcomes.items() if isinstance(v, str)}
        for run, out in outcomes.items():
            if not isinstance(out, str):
                log.info(
                    "%s: analyzed %d checkpoint(s), %d already done%s, %d HVPs, %.1f s -> %s",
                    run,
                    len(out.analyzed),
                    len(out.skipped),
                    f", {len(out.left_out)} left out (not finite: {out.left_out})" if out.left_out else "",
                    out.hvps,
                    out.wall_s,
                    out.out_dir,
                )
        if failed:
            for name, reason in failed.items():
                log.error("not analyzed: %s: %s", name, reason)
            listed = "; ".join(f"{Path(name).name}: {reason}" for name, reason in failed.items())
            raise HessdynError(f"{len(failed)} of {len(runs)} run(s) could not be analyzed ({listed})")
        return {"status": "completed", "runs": [str(r) for r in runs]}

    return run_job("analyze", body)


register_analyze_resolvers()  # conf/analyze.yaml's hydra.run.dir uses it; importing the command registers it
