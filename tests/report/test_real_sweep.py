"""The report of a real tiny sweep: ``hessdyn train`` and ``hessdyn analyze`` in-process (SGD and Adam, two
seeds, a digits MLP 64-8-10, checkpoints 0, 5, 20, 60), not the synthetic tables of fake_runs.py.

Every promised file is written, the page links exactly those files, every band stays in its metric's
range, and the aggregated numbers equal a direct pandas computation from the run tables.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from hessdyn.analysis.runner import analyze_run
from hessdyn.report.build import ReportResult
from hessdyn.report.figures import FIGURES
from hessdyn.store import domain
from hessdyn.training.loop import train
from tests.training.helpers import typed_config

from .conftest import build
from .test_report_files import assert_page_references_exactly_its_files, png_size

pytestmark = pytest.mark.slow  # trains and analyzes a real sweep

TRAIN = [
    "dataset=digits",
    "dataset.n_train=300",
    "model.widths=[8]",
    "trainer.max_steps=60",
    "checkpoint.schedule=list",
    "checkpoint.steps=[5,20]",
    "trainer.progress=false",
]
ANALYSIS = [
    "analysis.top_k=3",
    "analysis.hessian_set=150",
    "analysis.trace_hvps=18",
    "analysis.null_random_vectors=30",
    "analysis.null_init_seeds=1",
]
GROUPS = ("sgd", "adam")
SEEDS = (0, 1)
TOP_K = 3
# every figure the analysis' default metric groups feed; density and reparam are off by default, and a
# sweep whose eigenvalues never cross or cluster has no events figure
# figures of metric groups that analysis=default leaves off (density, reparam, noise), that need events, or
# that need the training-time probe (sharpness: trainer.sharpness is off here)
ALWAYS = {spec.name for spec in FIGURES if not spec.name.startswith("noise_")} - {
    "density",
    "reparam",
    "events",
    "sharpness",
}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("real") / "sweep"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # HVPs of a 610-parameter net: a second thread only contends on a busy machine
    try:
        analysis = typed_config(ANALYSIS, config_name="analyze").analysis
        for opt in GROUPS:
            for seed in SEEDS:
                run = root / f"optimizer={opt},seed={seed}"
                train(typed_config([*TRAIN, f"optimizer={opt}", f"seed={seed}"]), run)
                analyze_run(run, analysis, progress=False)
    finally:
        torch.set_num_threads(threads)
    return root


@pytest.fixture(scope="module")
def report(sweep: Path) -> ReportResult:
    return build(sweep)


def run_table(sweep: Path, path: str) -> pd.DataFrame:
    """One table of every run, with its group and seed (from the folder name)."""
    frames = []
    for opt in GROUPS:
        for seed in SEEDS:
            frame = pd.read_csv(sweep / f"optimizer={opt},seed={seed}" / path)
            frames.append(frame.assign(group=opt, seed=seed))
    return pd.concat(frames, ignore_index=True)


def figure_csv(report: ReportResult, name: str) -> pd.DataFrame:
    return pd.read_csv(report.out / f"{name}.csv", keep_default_na=False, na_values=[""])


def test_every_promised_file_is_written(report) -> None:
    assert ALWAYS <= set(report.figures)
    not_computed = {spec.name for spec in FIGURES if spec.title in report.not_computed}
    assert set(report.figures) | not_computed == {spec.name for spec in FIGURES}
    for name in ("index.html", "runs.csv", "summary.csv"):
        assert (report.out / name).stat().st_size > 0, name
    for name in report.figures:
        assert (report.out / f"{name}.csv").stat().st_size > 0, name
        width, height = png_size(report.out / f"{name}.png")
        assert width > 200 and height > 150, (name, width, height)
    runs = pd.read_csv(report.out / "runs.csv")
    assert set(runs["status"]) == {"completed"} and runs["analyzed"].all()
    assert set(runs["analyzed_checkpoints"]) == {4}


def test_page_references_exactly_the_files_that_exist(report) -> None:
    assert_page_references_exactly_its_files(report.out, report.figures)


def test_every_band_stays_in_its_metric_range(report) -> None:
    for name in report.figures:
        frame = figure_csv(report, name)
        banded = frame.dropna(subset=["band_lo", "band_hi"])
        assert (banded["lo"] <= banded["band_lo"] + 1e-12).all(), name
        assert (banded["band_lo"] <= banded["mean"] + 1e-12).all(), name
        assert (banded["mean"] <= banded["band_hi"] + 1e-12).all(), name
        assert (banded["band_hi"] <= banded["hi"] + 1e-12).all(), name
        for metric, rows in banded.groupby("metric"):
            d = domain(str(metric))
            assert (rows["band_lo"] >= d.low).all() and (rows["band_hi"] <= d.high).all(), (name, metric)
    accuracy = figure_csv(report, "accuracy").dropna(subset=["lo"])
    # two seeds (t = 12.7): the interval itself leaves [0, 1], the band does not
    assert accuracy["lo"].min() < 0 or accuracy["hi"].max() > 1


def test_final_lambda_max_is_the_mean_over_seeds_of_each_runs_last_step(sweep, report) -> None:
    runs = run_table(sweep, "analysis/summary.csv")
    last = runs[runs["step"] == runs.groupby(["group", "seed"])["step"].transform("max")]
    expected = last.groupby("group")["lambda_max"].mean()
    summary = pd.read_csv(report.out / "summary.csv")
    final = summary[summary["metric"] == "final_lambda_max"].set_index("group")
    for group in GROUPS:
        assert final.loc[group, "mean"] == pytest.approx(expected[group], rel=1e-12)
        assert final.loc[group, "n"] == len(SEEDS)
    # the same number in the eigenvalue figure's data: λ1 at the last checkpoint
    eig = figure_csv(report, "eigenvalues")
    at_end = eig[(eig["metric"] == "eigenvalue") & (eig["rank"] == 1) & (eig["step"] == 60)]
    assert at_end.set_index("group")["mean"].to_dict() == pytest.approx(expected.to_dict(), rel=1e-12)


@pytest.mark.parametrize("metric", ["displacement_matched_plain", "displacement_matched_cluster"])
def test_displacement_is_the_matched_displacement_between_consecutive_checkpoints(
    sweep, report, metric
) -> None:
    traj = run_table(sweep, "analysis/trajectory.csv")
    rows = traj[traj["metric"] == metric]
    steps = sorted(run_table(sweep, "analysis/summary.csv")["step"].unique())
    assert steps == [0, 5, 20, 60]
    consecutive = set(zip(steps[:-1], steps[1:], strict=True))
    rows = rows[[pair in consecutive for pair in zip(rows["step_a"], rows["step_b"], strict=True)]]
    assert sorted(rows["rank"].unique()) == list(range(1, TOP_K + 1))  # fewer than report.top_ranks (5)
    per_run = rows.groupby(["group", "seed", "step_b"])["value"].mean()  # over ranks first
    expected = per_run.groupby(level=["group", "step_b"]).mean()
    report_rows = figure_csv(report, "displacement")
    matched = report_rows[report_rows["metric"] == metric].set_index(["group", "step"])
    assert len(matched) == len(expected) == len(GROUPS) * 3
    for (group, step), value in expected.items():
        assert matched.loc[(group, step), "mean"] == pytest.approx(value, rel=1e-12)
    page = (report.out / "index.html").read_text(encoding="utf-8")
    assert f"averaged over ranks 1–{TOP_K}" in page  # the ranks there are, not report.top_ranks


def test_ipr_rank_1_is_the_mean_over_seeds_of_the_normalized_ipr(sweep, report) -> None:
    spectrum = run_table(sweep, "analysis/spectrum.csv")
    top = spectrum[(spectrum["which"] == "top") & (spectrum["rank"] == 1)]
    assert top["converged"].all()
    expected = top.groupby(["group", "step"])["ipr_normalized"].mean()
    ipr = figure_csv(report, "ipr")
    rank1 = ipr[(ipr["metric"] == "ipr_normalized") & (ipr["rank"] == 1)].set_index(["group", "step"])
    assert len(rank1) == len(expected)
    for key, value in expected.items():
        assert rank1.loc[key, "mean"] == pytest.approx(value, rel=1e-12)


def test_alignment_baseline_is_top_k_over_the_number_of_parameters(sweep, report) -> None:
    meta = json.loads((sweep / "optimizer=sgd,seed=0" / "analysis" / "analysis.json").read_text())
    assert meta["settings"]["top_k"] == TOP_K
    alignment = figure_csv(report, "alignment")
    baseline = alignment[alignment["metric"] == "random_alignment"]
    assert sorted(baseline["group"]) == sorted(GROUPS)
    assert baseline["mean"].tolist() == pytest.approx([TOP_K / meta["num_params"]] * 2)


def test_event_counts_match_events_csv(sweep, report) -> None:
    events = run_table(sweep, "analysis/events.csv")
    if events.empty:
        assert "events" not in report.figures
        return
    counts = figure_csv(report, "events")
    for (group, kind), part in events.groupby(["group", "kind"]):
        metric = {"crossing": "crossings", "cluster": "clusters"}[kind]
        rows = counts[(counts["group"] == group) & (counts["metric"] == metric)]
        assert rows["mean"].sum() * len(SEEDS) == pytest.approx(len(part))  # every event counted once
    assert np.isin(counts["step_b"], [5, 20, 60]).all()
