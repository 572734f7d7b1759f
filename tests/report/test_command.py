"""``hessdyn report`` from the shell: provenance inside the report, nothing in the working directory,
one-line errors before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from hessdyn.commands.preflight import preflight
from hessdyn.config.errors import HessdynError
from hessdyn.config.schema import ReportConfig
from hessdyn.report.build import build_report
from hessdyn.report.command import check_report_job
from hessdyn.report.runs import discover_runs

from .fake_runs import make_sweep


def _tree(path: Path) -> list[str]:
    return sorted(p.relative_to(path).as_posix() for p in path.rglob("*"))


@pytest.mark.slow
def test_cli_writes_the_report_with_its_provenance(run_cli, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    make_sweep(sweep, analyzed=False)
    (tmp_path / "cwd").mkdir()
    proc = run_cli("report", f"sweep_dir={sweep}", "report.group_by=optimizer.lr", cwd=tmp_path / "cwd")
    assert proc.returncode == 0, proc.stderr
    report = sweep / "report"
    for name in (
        "index.html",
        "runs.csv",
        "summary.csv",
        "loss.png",
        "loss.csv",
        "report.log",
        ".hydra/overrides.yaml",
    ):
        assert (report / name).is_file(), name
    assert "report.group_by=optimizer.lr" in (report / ".hydra" / "overrides.yaml").read_text()
    assert "report: " in (report / "report.log").read_text()  # the log kept writing after the swap
    page = (report / "index.html").read_text()
    assert 'href=".hydra/overrides.yaml"' in page and "lr=0.1" in page and "lr=0.001" in page
    assert _tree(tmp_path / "cwd") == [], "nothing may be written to the working directory"
    assert [p.name for p in sweep.iterdir() if p.name.startswith(".")] == []


@pytest.mark.slow
def test_cli_rerun_replaces_the_report(run_cli, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    (run,) = make_sweep(sweep, optimizers=("sgd",), seeds=(0,), analyzed=False)
    out = tmp_path / "figs"
    build_report(discover_runs(None, [str(run)], "optimizer"), out, ReportConfig(), source=str(run))
    (out / "old.txt").write_text("x")
    proc = run_cli("report", f"run_dirs=['{run}']", f"out={out}", "report.batch_curves=false")
    assert proc.returncode == 0, proc.stderr
    assert (out / "loss.png").is_file() and not (out / "old.txt").exists()
    assert "batch_curves=false" in (out / ".hydra" / "overrides.yaml").read_text()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sweep_dir={tmp}/nowhere"], "hessdyn: error: sweep_dir {tmp}/nowhere does not exist"),
        (["-m", "sweep_dir={tmp}/sweep", "report.band=0.9,0.95"], "hessdyn: error: hessdyn report runs once"),
    ],
)
def test_cli_errors_are_one_line_and_write_nothing(
    run_cli, tmp_path: Path, args: list[str], message: str
) -> None:
    make_sweep(tmp_path / "sweep", optimizers=("sgd",), seeds=(0,), analyzed=False)
    before = _tree(tmp_path)
    proc = run_cli("report", *[a.format(tmp=tmp_path) for a in args])
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(message.format(tmp=tmp_path)), proc.stderr
    assert _tree(tmp_path) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sweep_dir={tmp}/empty"], "no run directories"),
        ([], "give sweep_dir=PATH or run_dirs"),
        (["sweep_dir={tmp}/sweep", "out={tmp}/mine"], "is not a hessdyn report"),
        (["sweep_dir={tmp}/sweep", "out={tmp}/mine/thesis.tex"], "is a file"),
        (["sweep_dir={tmp}/sweep", "report.group_by=optimizer.nope"], "no run has the config key"),
        (["sweep_dir={tmp}/sweep", "report.formats=[svg]"], "invalid value for 'report.formats'"),
        (["sweep_dir={tmp}/sweep", "report.top_ranks=0"], "invalid value for 'report.top_ranks'"),
        (["sweep_dir={tmp}/sweep", "report.colour=red"], "unknown config key 'report.colour'"),
    ],
)
def test_bad_input_fails_in_preflight_with_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    """What the CLI runs before Hydra writes anything (the CLI prints the message as one line)."""
    (tmp_path / "empty").mkdir()
    make_sweep(tmp_path / "sweep", optimizers=("sgd",), seeds=(0,), analyzed=False)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("keep")
    before = _tree(tmp_path)
    with pytest.raises(HessdynError) as info:
        preflight("report", [a.format(tmp=tmp_path) for a in args], False, check_report_job)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert _tree(tmp_path) == before


def test_preflight_accepts_a_good_command_line(tmp_path: Path) -> None:
    make_sweep(tmp_path / "sweep", optimizers=("sgd",), seeds=(0,), analyzed=False)
    args = [f"sweep_dir={tmp_path / 'sweep'}", "report.group_by=optimizer.lr", "report.formats=[png,svg]"]
    assert preflight("report", args, False, check_report_job) == 1
