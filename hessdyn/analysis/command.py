"""``hessdyn analyze run_dir=PATH | sweep_dir=PATH [analysis.*=...]``: the Hydra task and its pre-launch check."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from hessdyn.commands.jobs import run_job
from hessdyn.config import to_object
from hessdyn.config.errors import HessdynError
from hessdyn.store import RunDir, find_run_dirs, is_run_dir, sweep_analyze_dir
from hessdyn.training.run_config import load_run_config

log = logging.getLogger("hessdyn.analyze")


def analyze_output_dir(run_dir: str | None, sweep_dir: str | None, name: str) -> str:
    """Hydra's output folder of an analyze job: the run's analysis folder, or SWEEP/analyze[-name]."""
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


def check_analyze_job(cfg: DictConfig, multirun: bool) -> None:
    from hessdyn.analysis.runner import check_settings

    typed = to_object(cfg)
    for run in target_runs(typed.run_dir, typed.sweep_dir):
        settings = run_settings(typed, run)
        check_settings(RunDir(run).analysis(settings.name), settings, force=typed.force)


def analyze_task(cfg: DictConfig) -> dict:
    from hessdyn.analysis.runner import analyze_many

    def body() -> dict:
        typed = to_object(cfg)
        runs = target_runs(typed.run_dir, typed.sweep_dir)
        outcomes = analyze_many(
            [(run, run_settings(typed, run)) for run in runs], data_root=typed.data_root, force=typed.force
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
            first = next(iter(failed.items()))
            raise HessdynError(
                f"{len(failed)} of {len(runs)} run(s) could not be analyzed (first: {first[0]}: {first[1]})"
            )
        return {"status": "completed", "runs": [str(r) for r in runs]}

    return run_job("analyze", body)


register_analyze_resolvers()  # conf/analyze.yaml's hydra.run.dir uses it; importing the command registers it
