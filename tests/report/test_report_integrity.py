"""The report trusts no file it reads (issue 14): damaged tables and records are named and left out (and
the command fails at the end), killed runs are "interrupted", builds never interleave, and what killed
builds left behind is cleaned."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from hessdyn.config.errors import DirectoryInUse
from hessdyn.config.schema import ReportConfig
from hessdyn.report.build import build_report
from hessdyn.report.folders import building, check_not_building, remove_stale
from hessdyn.report.runs import discover_runs
from hessdyn.store import AnalysisDir, RunDir
from hessdyn.store.locks import exclusive_folder
from tests.faults.corrupt import cut

from .conftest import build
from .fake_runs import make_sweep, write_run


@pytest.fixture(scope="module")
def damaged_report(tmp_path_factory):
    """A sweep with a cut spectrum.csv (recorded whole by its analysis), a run.json cut in half, a train.csv
    that lost rows its run.json counted, and a run killed while "running"; and its report."""
    sweep = tmp_path_factory.mktemp("damaged") / "sweep"
    runs = make_sweep(sweep, tables=("summary", "spectrum", "layer_mass"))
    cut_table, cut_json, lost_rows, _ = runs
    adir = AnalysisDir(cut_table)
    meta = adir.read_meta()
    adir.write_meta({**meta, "status": "complete", "tables": adir.table_records()})
    cut(adir.table_path("spectrum"), 0.8)  # the cut row used to read as "did not converge"
    cut(RunDir(cut_json).run_json, 0.5)
    record = RunDir(lost_rows).read_record()
    rows = len(pd.read_csv(RunDir(lost_rows).train_csv))
    RunDir(lost_rows).write_record({**record, "metrics_rows": rows + 3})
    write_run(sweep / "optimizer=adam,seed=7", "adam", 7, status="running", last_step=10)  # no lock held
    return sweep, build(sweep)


def test_damaged_files_are_named_left_out_and_listed(damaged_report):
    sweep, result = damaged_report
    problems = "\n".join(result.problems)
    assert len(result.problems) == 3, problems
    assert "optimizer=sgd,seed=0/analysis/spectrum.csv failed its check (its last line is cut off" in problems
    assert "rerun hessdyn analyze" in problems
    assert "optimizer=sgd,seed=1/run.json is damaged (not valid JSON" in problems
    assert (
        "optimizer=adam,seed=0/metrics/train.csv failed its check" in problems
        and "analysis.json" not in (result.problems[2])
    )
    page = (result.out / "index.html").read_text(encoding="utf-8")
    assert all(p.split(" (")[0].split("/")[-1] in page for p in result.problems)
    spectrum = pd.read_csv(result.out / "runs.csv").set_index("run")
    assert spectrum.loc["optimizer=sgd,seed=1", "status"] == "unknown"


def test_a_killed_running_run_is_interrupted_and_not_averaged(damaged_report):
    """SIGTERM or kill -9 left run.json "running" for ever, and the report averaged such runs in."""
    _, result = damaged_report
    runs = pd.read_csv(result.out / "runs.csv").set_index("run")
    killed = runs.loc["optimizer=adam,seed=7"]
    assert killed["status"] == "interrupted" and not killed["in_means"]
    assert "process is gone" in killed["note"]
    assert any(w.startswith("interrupted (") and "seed=7" in w for w in result.warnings)


def test_the_report_command_goes_on_past_a_bad_run_and_fails_at_the_end(damaged_report, run_cli, tmp_path):
    sweep, _ = damaged_report
    proc = run_cli("report", f"sweep_dir={sweep}", f"out={tmp_path / 'out'}")
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("hessdyn report: error: ") and "3 file(s) failed their checks" in last
    assert (tmp_path / "out" / "index.html").is_file()
    assert "Traceback" not in proc.stderr


def test_a_second_report_build_is_refused_with_a_clear_line(tmp_path):
    """Two concurrent builds gave the loser a misleading "not a hessdyn report"."""
    sweep = tmp_path / "sweep"
    make_sweep(sweep, optimizers=("sgd",), seeds=(0,), analyzed=False)
    out = sweep / "report"
    runs = discover_runs(str(sweep), [], "optimizer")
    with exclusive_folder(sweep):  # the first build holds the folder
        with pytest.raises(DirectoryInUse, match="another hessdyn report is being written beside"):
            check_not_building(out)
        with pytest.raises(DirectoryInUse, match="another hessdyn report is being written beside"):
            build_report(runs, out, ReportConfig(), source=str(sweep))
    assert not out.exists() and sorted(p.name for p in sweep.iterdir() if p.name.startswith(".")) == []


def _dead_pid() -> int:
    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        pid += 1


def test_what_killed_report_builds_left_is_removed(tmp_path):
    """Killed builds left hidden ``.report.staging-*`` folders for ever."""
    out = tmp_path / "report"
    dead = tmp_path / f".report.staging-{_dead_pid()}-123"
    alive = tmp_path / f".report.staging-{os.getppid()}-456"  # a live build's (not ours): kept
    for folder in (dead, alive):
        (folder / ".hydra").mkdir(parents=True)
    old = tmp_path / ".report.old-1-99"  # killed between the two renames: the only copy of the report
    old.mkdir()
    (old / "index.html").write_text("old report")
    (old / "runs.csv").write_text("run\n")
    with building(out):
        pass
    assert not dead.exists() and alive.exists()
    assert (out / "index.html").read_text() == "old report"  # put back, not deleted
    (tmp_path / ".report.old-1-100").mkdir()
    remove_stale(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == [alive.name, "report"]


def test_run_dirs_naming_a_file_says_it_is_a_file(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(Exception, match="notes.txt is a file"):
        discover_runs(None, [str(tmp_path / "notes.txt")], "optimizer")
    with pytest.raises(Exception, match="sweep_dir .*notes.txt is a file"):
        discover_runs(str(tmp_path / "notes.txt"), [], "optimizer")
