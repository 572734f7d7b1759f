"""Report fixtures: synthetic sweeps (tests/report/fake_runs.py) and reports built from them once per session."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from hessdyn.config.schema import ReportConfig
from hessdyn.report.build import ReportResult, build_report
from hessdyn.report.runs import discover_runs
from hessdyn.store import RunDir

from .fake_runs import make_sweep, write_run

PARTIAL_TABLES = ("summary", "spectrum")


def build(sweep: Path, **settings) -> ReportResult:
    config = ReportConfig(**settings)
    runs = discover_runs(str(sweep), [], config.group_by)
    return build_report(runs, sweep / "report", config, source=str(sweep))


@pytest.fixture(scope="session")
def clean_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two optimizers x two seeds, completed, with every analysis table and the training-time probe."""
    root = tmp_path_factory.mktemp("clean") / "sweep"
    make_sweep(root, probe=True)
    return root


@pytest.fixture(scope="session")
def clean_report(clean_sweep: Path) -> ReportResult:
    return build(clean_sweep)


@pytest.fixture(scope="session")
def partial_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 2x2 sweep (fewer tables) plus a diverged run (deeper folder), a run not analyzed, a running
    run, and a job that died before writing run.json."""
    root = tmp_path_factory.mktemp("partial") / "sweep"
    make_sweep(root, tables=PARTIAL_TABLES)
    write_run(
        root / "extra" / "optimizer=sgd,seed=2",
        "sgd",
        2,
        status="diverged",
        last_step=30,
        tables=PARTIAL_TABLES,
    )
    write_run(root / "optimizer=adam,seed=2", "adam", 2, analyzed=False)
    write_run(root / "optimizer=adam,seed=3", "adam", 3, status="running", last_step=10, analyzed=False)
    write_run(root / "optimizer=sgd,seed=3", "sgd", 3, run_json=False)
    return root


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture(scope="session")
def partial_report(partial_sweep: Path) -> tuple[ReportResult, list[str]]:
    """The report of the partial sweep and the warnings logged while building it."""
    handler, logger = _Collect(), logging.getLogger("hessdyn")
    logger.addHandler(handler)
    try:
        # a running run's process holds its folder's lock (without it the run is interrupted: killed)
        with RunDir(partial_sweep / "optimizer=adam,seed=3").lock("hessdyn train"):
            result = build(partial_sweep)
    finally:
        logger.removeHandler(handler)
    return result, handler.messages
