"""Partial data: runs not analyzed, diverged, running or without run.json are listed, never fatal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hessdyn.config.schema import ReportConfig
from hessdyn.report.aggregate import eigenvalue_data, seed_series, t_band
from hessdyn.report.build import build_report
from hessdyn.report.figures import FIGURES
from hessdyn.report.runs import discover_runs
from hessdyn.report.tables import load_tables

from .conftest import build
from .fake_runs import make_sweep


def test_every_run_is_listed_with_status_and_analysis(partial_report) -> None:
    report, _ = partial_report
    runs = pd.read_csv(report.out / "runs.csv").set_index("run")
    assert runs.loc["extra/optimizer=sgd,seed=2", "status"] == "diverged"
    assert runs.loc["optimizer=adam,seed=3", "status"] == "running"
    assert runs.loc["optimizer=sgd,seed=3", "status"] == "unknown"
    assert not runs.loc["optimizer=adam,seed=2", "analyzed"]
    assert runs.loc["optimizer=sgd,seed=0", "analyzed"]
    assert runs.loc["extra/optimizer=sgd,seed=2", "analyzed_checkpoints"] == 5  # up to divergence
    assert runs.loc["optimizer=sgd,seed=0", "analyzed_checkpoints"] == 6
    assert list(runs["in_means"][runs["status"] == "diverged"]) == [False]
    page = (report.out / "index.html").read_text(encoding="utf-8")
    for status in ("diverged", "running", "unknown", "completed"):
        assert f'<span class="status {status}">{status}</span>' in page
    assert "extra/optimizer=sgd,seed=2" in page


def test_partial_data_is_warned_about_on_the_page_and_in_the_log(partial_report) -> None:
    result, logged = partial_report
    for text in (
        "diverged: extra/optimizer=sgd,seed=2",
        "not analyzed yet: optimizer=adam,seed=2",
        "still running",
        "no run.json",
    ):
        assert any(text in m for m in logged), text
        assert any(text in w for w in result.warnings), text
    assert "Partial data" in (result.out / "index.html").read_text(encoding="utf-8")


def test_diverged_run_is_drawn_individually_not_averaged(partial_report) -> None:
    out = partial_report[0].out
    loss = pd.read_csv(out / "loss.csv", keep_default_na=False, na_values=[""])
    mine = loss[loss["run"] == "extra/optimizer=sgd,seed=2"]
    assert not mine.empty and mine["step"].max() == 30  # its curve stops at divergence
    means = loss[
        loss["run"].isna() & (loss["group"] == "sgd") & (loss["source"] == "eval") & (loss["split"] == "test")
    ]
    assert set(means["n"]) == {2}  # seeds 0 and 1; the diverged seed 2 is not in the mean
    adam = loss[
        loss["run"].isna()
        & (loss["group"] == "adam")
        & (loss["source"] == "eval")
        & (loss["split"] == "test")
    ]
    assert adam.set_index("step").loc[10, "n"] == 4  # seeds 0-2 and the running seed 3 (up to step 10)
    assert adam.set_index("step").loc[20, "n"] == 3
    eig = pd.read_csv(out / "eigenvalues.csv")
    assert set(eig.loc[eig["group"] == "adam", "n"].dropna()) == {2}  # the analyzed adam runs only


def test_figures_without_data_are_listed_not_drawn(partial_report) -> None:
    report, _ = partial_report
    assert set(report.not_computed) == {
        "Eigenvector displacement",
        "Subspace overlap with the first and last checkpoint",
        "Two-time overlap (heatmap)",
        "Two-time overlap against lag (aging)",
        "Eigenvector mass per layer",
        "Eigenvalue crossings and clusters",
        "Spectral density snapshots",
        "Sharpness under reparametrization",
        "Sharpness during training (probe)",
        "Top-subspace overlap of gradient noise and curvature",
        "Diagonal power law of noise against curvature",
        "Gradient noise per unit of curvature",
        "Generalization gap against curvature measures",
    }
    out = report.out
    for name in ("density", "reparam", "layer_mass"):
        assert not (out / f"{name}.png").exists() and not (out / f"{name}.csv").exists()
    assert (out / "eigenvalues.png").exists() and (out / "ipr.png").exists()
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "Not computed" in page and "Spectral density snapshots</b>: not computed" in page


def test_sweep_without_any_analysis_still_reports_training(tmp_path: Path) -> None:
    make_sweep(tmp_path / "sweep", analyzed=False)
    result = build(tmp_path / "sweep")
    assert result.figures == ("loss", "accuracy", "gap")
    assert len(result.not_computed) == len(FIGURES) - 3
    summary = pd.read_csv(result.out / "summary.csv")
    assert set(summary["metric"]) == {
        "final_train_loss",
        "final_test_loss",
        "final_train_accuracy",
        "final_test_accuracy",
        "final_loss_gap",
    }


def test_unreadable_table_is_named_and_left_out(tmp_path: Path) -> None:
    (run,) = make_sweep(tmp_path / "sweep", optimizers=("sgd",), seeds=(0,), analyzed=False)
    (run / "metrics" / "train.csv").write_bytes(b"\xff\xfe\x00garbage")
    result = build(tmp_path / "sweep")
    assert any("train.csv failed its check (unreadable" in w for w in result.warnings)
    assert result.problems and result.figures == ()


def test_one_seed_gives_no_band() -> None:
    assert t_band([2.0], 0.95)[2:4] == pytest.approx([np.nan, np.nan], nan_ok=True)
    mean, sd, lo, hi, n = t_band([1.0, 2.0, 3.0, np.nan], 0.9)
    assert (mean, n) == (2.0, 3)
    assert hi - mean == pytest.approx(2.919985580 * 1.0 / np.sqrt(3))  # t_{0.95, 2} * sd / sqrt(n)
    frame = pd.DataFrame({"run": ["a"], "group": ["g"], "status": ["completed"], "step": [0], "v": [1.5]})
    row = seed_series(frame, ["step"], "v", "v", 0.95).iloc[0]
    assert row["mean"] == 1.5 and row["n"] == 1 and np.isnan(row["lo"])


def test_report_replaces_only_a_previous_report(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    make_sweep(sweep, optimizers=("sgd",), seeds=(0,), analyzed=False)
    runs = discover_runs(str(sweep), [], "optimizer")
    build_report(runs, sweep / "report", ReportConfig(), source=str(sweep))
    (sweep / "report" / "stale.txt").write_text("from the old report")
    (sweep / "notes.txt").write_text("mine")
    build_report(runs, sweep / "report", ReportConfig(), source=str(sweep))
    assert not (sweep / "report" / "stale.txt").exists()
    assert (sweep / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in sweep.iterdir() if p.name.startswith(".")) == []
    other = tmp_path / "mine"
    other.mkdir()
    (other / "thesis.tex").write_text("keep me")
    with pytest.raises(Exception, match="not a hessdyn report"):
        build_report(runs, other, ReportConfig(), source=str(sweep))
    assert (other / "thesis.tex").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "sweep"]


def test_unconverged_eigenpairs_are_left_out_with_a_warning(tmp_path: Path) -> None:
    (run,) = make_sweep(tmp_path / "sweep", optimizers=("sgd",), seeds=(0,), tables=("spectrum",))
    path = run / "analysis" / "spectrum.csv"
    spectrum = pd.read_csv(path)
    spectrum.loc[
        (spectrum["step"] == 100) & (spectrum["rank"] == 1) & (spectrum["which"] == "top"), "converged"
    ] = False
    spectrum.to_csv(path, index=False)
    tables = load_tables(discover_runs(str(tmp_path / "sweep"), [], "optimizer"))
    assert any("1 of 48 eigenpairs did not converge" in w for w in tables.warnings)
    eig = eigenvalue_data(tables, ranks=5, level=0.95)
    eig = eig[eig["metric"] == "eigenvalue"]
    assert eig[(eig["step"] == 100)]["rank"].tolist() == [2, 3, 4, 5]
    assert eig[(eig["step"] == 30)]["rank"].tolist() == [1, 2, 3, 4, 5]
