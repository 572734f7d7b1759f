"""``hessdyn report``: the Hydra task, its pre-launch check, and where Hydra's job folder goes.

Hydra's job folder (``hydra.run.dir``) is the report's staging folder, a hidden sibling of the
destination (``.report.staging-<pid>-<ns>``): Hydra writes ``.hydra/`` and ``report.log`` there, the task
writes the report beside them and renames the folder to the destination at the end. So the provenance
lands in the report, nothing appears in the caller's working directory, and an open log file keeps
writing into the renamed folder.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, ListConfig, OmegaConf

from hessdyn.commands.jobs import job_thread_policy, run_job
from hessdyn.config import to_object
from hessdyn.config.errors import HessdynError
from hessdyn.config.schema import ReportCommandConfig
from hessdyn.io import check_writable
from hessdyn.report.folders import (
    STAGING_MARK,
    check_not_building,
    check_replaceable,
    default_out,
    index_page,
    staging_dir,
)
from hessdyn.report.runs import discover_runs

log = logging.getLogger("hessdyn")

_PROCESS_STAMP = f"{os.getpid()}-{time.time_ns()}"  # one staging name per process, however often resolved
RESOLVER = "hessdyn.report_staging"


def report_out(out: str | None, sweep_dir: str | None, run_dirs: Sequence[str]) -> Path:
    """The destination folder: ``out``, else ``SWEEP/report``, else next to the run directories."""
    if out:
        return Path(out).expanduser().resolve()
    return default_out(sweep_dir, list(run_dirs))


def _staging_for(out: Any, sweep_dir: Any, run_dirs: Any) -> str:
    if isinstance(run_dirs, ListConfig):
        run_dirs = OmegaConf.to_container(run_dirs)
    try:
        target = report_out(out, sweep_dir, list(run_dirs or []))
    except HessdynError:  # nothing given: the check has refused already; keep Hydra out of the cwd anyway
        target = Path(tempfile.gettempdir()) / "hessdyn-report"
    return str(target.with_name(f".{target.name}{STAGING_MARK}{_PROCESS_STAMP}"))


def register_resolver() -> None:
    if not OmegaConf.has_resolver(RESOLVER):
        OmegaConf.register_new_resolver(RESOLVER, _staging_for)


register_resolver()  # conf/report.yaml's hydra.run.dir uses it; importing the command registers it


def check_report_job(cfg: DictConfig, multirun: bool) -> None:
    """Before Hydra writes anything: the runs exist and have the group key, the destination is free."""
    if multirun:
        raise HessdynError(
            "hessdyn report runs once, not as a sweep: drop -m (list several runs with run_dirs=[...])"
        )
    settings: ReportCommandConfig = to_object(cfg)
    discover_runs(settings.sweep_dir, settings.run_dirs, settings.report.group_by)
    out = report_out(settings.out, settings.sweep_dir, settings.run_dirs)
    check_writable(out.parent, "out")
    check_replaceable(out)
    check_not_building(out)


def report_task(cfg: DictConfig) -> dict:
    """Hydra task of ``hessdyn report``."""
    job_dir = Path(HydraConfig.get().runtime.output_dir)
    overrides = list(HydraConfig.get().overrides.task)

    def body() -> dict:
        from hessdyn.report.build import build_report  # matplotlib & co. only once a report is built

        settings: ReportCommandConfig = to_object(cfg)
        job_thread_policy(settings.runtime)
        out = report_out(settings.out, settings.sweep_dir, settings.run_dirs)
        ours = job_dir.parent == out.parent and job_dir.name.startswith(f".{out.name}{STAGING_MARK}")
        staging = job_dir if ours else staging_dir(out)
        if not ours and (job_dir / ".hydra").is_dir():  # hydra.run.dir was overridden: copy the provenance
            shutil.copytree(job_dir / ".hydra", staging / ".hydra")
        try:
            runs = discover_runs(settings.sweep_dir, settings.run_dirs, settings.report.group_by)
            source = settings.sweep_dir or ", ".join(settings.run_dirs)
            result = build_report(
                runs,
                out,
                settings.report,
                source=str(source),
                staging=staging,
                extra_settings={"command overrides": " ".join(overrides)},
            )
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        if result.problems:  # the report is written without them; the command says so and fails
            for problem in result.problems:
                log.error("report: %s", problem)
            raise HessdynError(
                f"{index_page(result.out)} is written, but {len(result.problems)} file(s) failed their checks "
                f"and were left out (listed on the page): {result.problems[0]}"
            )
        return {
            "out": str(result.out),
            "figures": list(result.figures),
            "not_computed": list(result.not_computed),
        }

    return run_job("report", body)
