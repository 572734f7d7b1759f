"""``hessdyn run [experiment=NAME] [overrides]``: train → analyze → report for every run of an experiment.

Each stage is an ordinary hessdyn command started as a subprocess (so any Hydra launcher fans it out:
``hydra/launcher=joblib`` or ``submitit_slurm``), and each stage is skipped when its work is done:
training skips completed runs and resumes interrupted ones, the analysis skips analyzed checkpoints, and
the report is rebuilt only when a run or an analysis changed after it was written. Rerunning the same
command after an interruption therefore finishes the work without redoing it.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from hessdyn.analysis.settings import analysis_complete
from hessdyn.commands.preflight import compose_jobs
from hessdyn.config import to_object
from hessdyn.config.errors import ConfigValueError, HessdynError
from hessdyn.report.folders import index_page
from hessdyn.store import RunDir, sweep_report_dir
from hessdyn.training.command import check_train_job, job_output_dir

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

USAGE = """usage: hessdyn run [experiment=NAME] [train overrides] [hydra/launcher=joblib|submitit_local|submitit_slurm]

Runs train -> analyze -> report for every run of the experiment (its hydra.sweeper.params times your
sweeps a=1,2), skipping finished stages: rerun the same command to resume after an interruption.
Runs land in ${out_dir}/${name}/<overrides>/, the report in ${out_dir}/${name}/report/.
Analysis and report settings come from the experiment (its analysis: and report: sections) and your
analysis.* / report.* overrides; they never name run folders, so changing them retrains nothing.

examples:
  hessdyn run experiment=quickstart
  hessdyn run experiment=optimizer_dynamics hydra/launcher=joblib
"""


@dataclass(frozen=True)
class Job:
    run_dir: Path
    cfg: DictConfig

    @property
    def run(self) -> RunDir:
        return RunDir(self.run_dir)


def plan(overrides: list[str]) -> list[Job]:
    """Every training job of the command line, validated, with its run directory (one job per folder).

    Settings that do not change training (``analysis.*``, ``report.*``) do not name run folders, so
    sweeping them would give several jobs one folder: that is refused with what to do instead.
    """
    jobs: dict[Path, Job] = {}
    for cfg in compose_jobs("train", overrides, multirun=True):
        HydraConfig.instance().set_config(cfg)
        if to_object(cfg).analysis.distributed:
            raise ConfigValueError(
                "analysis.distributed",
                "hessdyn run analyzes in one process per run; train with hessdyn run or hessdyn train, then "
                "torchrun --nproc_per_node=N -m hessdyn analyze run_dir=... analysis.distributed=true",
            )
        run_dir = job_output_dir(cfg, multirun=True)
        check_train_job(cfg, multirun=True)
        if run_dir in jobs:
            raise HessdynError(
                f"two jobs of this command would share the run folder {run_dir}: a sweep over settings that do "
                "not change training (analysis.*, report.*) trains nothing new; run once, then "
                "`hessdyn analyze sweep_dir=... analysis.name=NAME analysis.KEY=VALUE` per setting"
            )
        jobs[run_dir] = Job(run_dir, cfg)
    return list(jobs.values())


def _launcher_overrides(overrides: Sequence[str]) -> list[str]:
    return [o for o in overrides if o.lstrip("+~").startswith(("hydra/launcher=", "hydra.launcher."))]


def _runtime_overrides(overrides: Sequence[str]) -> list[str]:
    """``runtime.*`` (the thread policy) applies to every stage."""
    return [o for o in overrides if o.lstrip("+~").startswith("runtime.")]


def _call(args: list[str]) -> int:
    print("$ hessdyn " + " ".join(args), file=sys.stderr, flush=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "hessdyn", *args], env=env, check=False).returncode


def _report_fresh(report_dir: Path, jobs: list[Job]) -> bool:
    index = index_page(report_dir)
    if not index.exists():
        return False
    built = index.stat().st_mtime
    inputs = []
    for job in jobs:
        inputs.append(job.run.run_json)
        inputs.append(job.run.analysis(to_object(job.cfg).analysis.name).meta_path)
    return all(p.stat().st_mtime <= built for p in inputs if p.exists())


def _override_value(value: object) -> str:
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_override_value(v) for v in value) + "]"
    if isinstance(value, str):
        return _quote(Path(value)) if any(c in value for c in " ,=[]'\"") else value
    return str(value)


def settings_overrides(section: str, settings: DataclassInstance) -> list[str]:
    """``section.key=value`` for every field of the dataclass ``settings``: a later stage gets exactly the
    settings this process composed (an experiment's ``analysis:`` section, the user's overrides)."""
    return [
        f"{section}.{f.name}={_override_value(getattr(settings, f.name))}"
        for f in dataclasses.fields(settings)
    ]


def _quote(path: Path) -> str:
    return "'" + str(path).replace("\\", "\\\\").replace("'", "\\'") + "'"


def analyze_command(todo: list[Job], overrides: Sequence[str]) -> list[str]:
    """The ``hessdyn analyze`` command line of the pipeline's analysis stage for the runs ``todo``.

    It passes the pipeline's own analysis settings (the experiment's, with the command line's overrides),
    not each run's ``.hydra/config.yaml``: training is skipped for finished runs, which keep the copy of
    the command that trained them.
    """
    analysis = to_object(todo[0].cfg).analysis
    args = [
        "analyze",
        *settings_overrides("analysis", analysis),
        *_launcher_overrides(overrides),
        *_runtime_overrides(overrides),
    ]
    if len(todo) == 1:
        return [*args, f"run_dir={_quote(todo[0].run_dir)}"]
    return [args[0], "-m", *args[1:], "run_dir=" + ",".join(_quote(j.run_dir) for j in todo)]


def run_pipeline(overrides: list[str]) -> int:
    jobs = plan(overrides)
    sweep_dir = Path(str(jobs[0].cfg.hydra.sweep.dir))
    print(f"hessdyn run: {len(jobs)} run(s) in {sweep_dir}", file=sys.stderr)

    # 1. train (Hydra multirun through the chosen launcher); finished runs are skipped inside each job.
    pending = [j for j in jobs if not j.run.status().finished]
    if pending:
        rc = _call(["train", "-m", *overrides])
        if rc != 0:
            print(f"hessdyn run: training stopped with exit status {rc}; rerun to resume", file=sys.stderr)
            return rc
    else:
        print(f"hessdyn run: train: all {len(jobs)} run(s) finished, skipped", file=sys.stderr)

    # 2. analyze every run that has checkpoints, with the settings its experiment chose.
    analyzable = [j for j in jobs if j.run.checkpoints()]
    todo = [j for j in analyzable if not analysis_complete(j.run, to_object(j.cfg).analysis)]
    if todo:
        args = analyze_command(todo, overrides)
        rc = _call(args)
        if rc != 0:
            print(f"hessdyn run: analysis stopped with exit status {rc}; rerun to resume", file=sys.stderr)
            return rc
    else:
        print(f"hessdyn run: analyze: all {len(analyzable)} run(s) analyzed, skipped", file=sys.stderr)

    # 3. report over the experiment's folder, with the experiment's report settings.
    report_dir = sweep_report_dir(sweep_dir)
    if _report_fresh(report_dir, jobs):
        print(f"hessdyn run: report: {report_dir} is up to date, skipped", file=sys.stderr)
        return 0
    report = to_object(jobs[0].cfg).report
    report = dataclasses.replace(report, analysis_name=to_object(jobs[0].cfg).analysis.name)
    args = [
        "report",
        f"sweep_dir={_quote(sweep_dir)}",
        *settings_overrides("report", report),
        *_runtime_overrides(overrides),
    ]
    rc = _call(args)
    if rc == 0:
        print(f"hessdyn run: done; open {index_page(report_dir)}", file=sys.stderr)
    return rc


def main(argv: Sequence[str]) -> int:
    args = list(argv)
    if any(a in ("-h", "--help") for a in args):
        print(USAGE)
        return 0
    if any(a in ("-m", "--multirun") for a in args):
        print("hessdyn run: note: -m is implied (every run of the experiment is launched)", file=sys.stderr)
        args = [a for a in args if a not in ("-m", "--multirun")]
    if any(a.startswith("-") for a in args):
        raise HessdynError(
            f"hessdyn run takes overrides only (key=value), not {[a for a in args if a.startswith('-')]}"
        )
    return run_pipeline(args)
