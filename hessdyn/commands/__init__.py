"""The commands of ``hessdyn``: one module each, found through this registry.

A command is a Hydra app: a primary config in ``conf/<config_name>.yaml`` and a task function that
receives the composed config. ``check`` (optional) runs in the launching process for every job of a
run or sweep before Hydra writes anything, so bad input fails before any result is touched.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Command:
    name: str
    config_name: str
    summary: str
    task: str  # "module:function" called with the composed DictConfig
    check: str | None = (
        None  # "module:function"(cfg: DictConfig, multirun: bool) -> None, raises HessdynError
    )
    hydra_app: bool = True  # False: `task` takes the raw argument list (commands that orchestrate others)

    def load_task(self) -> Callable[[Any], Any]:
        return _load(self.task)

    def load_check(self) -> Callable[[Any], None] | None:
        return _load(self.check) if self.check else None


def _load(target: str) -> Callable[..., Any]:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


COMMANDS: dict[str, Command] = {
    c.name: c
    for c in [
        Command(
            "train",
            "train",
            "train a model on a dataset, writing checkpoints and a metrics table",
            "hessdyn.training.command:train_task",
            "hessdyn.training.command:check_train_job",
        ),
        Command(
            "analyze",
            "analyze",
            "Hessian spectra, eigenvector trajectories and localization for every checkpoint of a run",
            "hessdyn.analysis.command:analyze_task",
            "hessdyn.analysis.command:check_analyze_job",
        ),
        Command(
            "run",
            "train",
            "the whole pipeline for an experiment: train -> analyze -> report, skipping finished stages",
            "hessdyn.pipeline.command:main",
            hydra_app=False,
        ),
        Command(
            "report",
            "report",
            "figures and an HTML report comparing groups of runs (mean and band over seeds)",
            "hessdyn.report.command:report_task",
            "hessdyn.report.command:check_report_job",
        ),
    ]
}
