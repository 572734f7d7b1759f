"""A report of a tiny sweep writes every promised file, the page links exactly those files, and the CSV
numbers are the mean and t-band of the run tables."""

from __future__ import annotations

import shutil
import struct
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from hessdyn.report.figures import FIGURES
from hessdyn.store import find_run_dirs, table, write_table

from .conftest import build
from .fake_runs import make_sweep

STAT_COLUMNS = ["group", "metric", "mean", "lo", "hi", "band_lo", "band_hi", "n"]


class Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str]] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        for name, value in attrs:
            if value and name in ("src", "href"):
                self.refs.append((tag, value))


def page_refs(report: Path) -> Refs:
    parser = Refs()
    parser.feed((report / "index.html").read_text(encoding="utf-8"))
    return parser


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    assert head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def t_band(values: pd.Series, level: float = 0.95) -> tuple[float, float, float]:
    mean, sd, n = values.mean(), values.std(ddof=1), len(values)
    half = stats.t.ppf(0.5 + level / 2, n - 1) * sd / np.sqrt(n)
    return mean, mean - half, mean + half


# The fake runs have no noise-group tables (the noise figures are tested in test_noise_figures.py).
NOISE_FIGURES = [spec for spec in FIGURES if spec.name.startswith("noise_")]
DRAWN = [spec for spec in FIGURES if spec not in NOISE_FIGURES]


def test_every_promised_file_is_written(clean_report) -> None:
    out = clean_report.out
    assert set(clean_report.figures) == {spec.name for spec in DRAWN}
    assert set(clean_report.not_computed) == {spec.title for spec in NOISE_FIGURES}
    for name in ["index.html", "runs.csv", "summary.csv"]:
        assert (out / name).stat().st_size > 0, name
    for spec in DRAWN:
        for ext in ("png", "csv"):
            assert (out / f"{spec.name}.{ext}").stat().st_size > 0, f"{spec.name}.{ext}"
        width, height = png_size(out / f"{spec.name}.png")
        assert width > 200 and height > 150, (spec.name, width, height)
    assert not list(out.parent.glob(".report*")), "staging or old-report folders left behind"


def assert_page_references_exactly_its_files(out: Path, figures) -> None:  # noqa: ANN001
    """Every reference of index.html is local and exists, every file beside it is referenced, and the
    images are exactly the PNGs of `figures` (names)."""
    parser = page_refs(out)
    referenced = set()
    for tag, value in parser.refs:
        url = urlparse(value)
        assert not url.scheme and not value.startswith("//"), f"remote reference <{tag} {value}>"
        if value.startswith("#"):
            continue
        path = unquote(url.path)
        assert (out / path).is_file(), f"<{tag}> points to missing {path}"
        referenced.add(path)
    on_disk = {p.name for p in out.iterdir() if p.is_file() and p.name != "index.html"}
    assert referenced == on_disk
    images = {v for t, v in parser.refs if t == "img"}
    assert images == {f"{name}.png" for name in figures}


def test_page_references_exactly_the_files_that_exist(clean_report) -> None:
    assert_page_references_exactly_its_files(clean_report.out, [spec.name for spec in DRAWN])


def test_page_is_self_contained(clean_report) -> None:
    text = (clean_report.out / "index.html").read_text(encoding="utf-8")
    tags = page_refs(clean_report.out).tags
    assert "script" not in tags and "link" not in tags, "no scripts or external stylesheets"
    assert "<style>" in text and "http://" not in text and "https://" not in text


def test_every_figure_csv_is_tidy(clean_report) -> None:
    for spec in DRAWN:
        frame = pd.read_csv(clean_report.out / f"{spec.name}.csv")
        assert set(STAT_COLUMNS) <= set(frame.columns), spec.name
        assert not frame.empty, spec.name
        assert set(frame["group"]) == {"adam", "sgd"}, spec.name


def _run_tables(sweep: Path, path: str) -> pd.DataFrame:
    frames = []
    for run in find_run_dirs(sweep):
        frame = pd.read_csv(run / path)
        frame["group"] = run.name.split(",")[0].split("=")[1]
        frame["run"] = run.name
        frames.append(frame)
    return pd.concat(frames)


def test_loss_csv_is_mean_and_t_band_over_seeds(clean_sweep, clean_report) -> None:
    runs = _run_tables(clean_sweep, "metrics/train.csv")
    evals = runs[(runs["source"] == "eval") & (runs["split"] == "test")]
    report = pd.read_csv(clean_report.out / "loss.csv")
    report = report[(report["source"] == "eval") & (report["split"] == "test")]
    assert len(report) == evals.groupby(["group", "step"]).ngroups
    for (group, step), values in evals.groupby(["group", "step"])["loss"]:
        row = report[(report["group"] == group) & (report["step"] == step)].iloc[0]
        mean, lo, hi = t_band(values)
        assert row["n"] == 2
        assert row[["mean", "lo", "hi"]].to_numpy(dtype=float) == pytest.approx([mean, lo, hi], rel=1e-12)


def test_eigenvalue_csv_matches_spectrum_tables(clean_sweep, clean_report) -> None:
    spectrum = _run_tables(clean_sweep, "analysis/spectrum.csv")
    top = spectrum[(spectrum["which"] == "top") & (spectrum["rank"] <= 5)]
    report = pd.read_csv(clean_report.out / "eigenvalues.csv")
    eig = report[report["metric"] == "eigenvalue"]
    assert sorted(eig["rank"].unique()) == [1, 2, 3, 4, 5]
    for (group, step, rank), values in top.groupby(["group", "step", "rank"])["eigenvalue"]:
        row = eig[(eig["group"] == group) & (eig["step"] == step) & (eig["rank"] == rank)].iloc[0]
        assert row[["mean", "lo", "hi"]].to_numpy(dtype=float) == pytest.approx(t_band(values), rel=1e-12)


def test_displacement_csv_uses_consecutive_pairs_averaged_over_leading_ranks(
    clean_sweep, clean_report
) -> None:
    traj = _run_tables(clean_sweep, "analysis/trajectory.csv")
    steps = sorted(set(traj["step_a"]) | set(traj["step_b"]))
    consecutive = set(zip(steps[:-1], steps[1:], strict=True))
    figure = pd.read_csv(clean_report.out / "displacement.csv")
    for metric in ("displacement_matched_plain", "displacement_matched_cluster", "displacement_ranked"):
        rows = traj[(traj["metric"] == metric) & (traj["rank"] <= 5)]
        rows = rows[[pair in consecutive for pair in zip(rows["step_a"], rows["step_b"], strict=True)]]
        per_run = rows.groupby(["group", "step_b", "run"])["value"].mean()  # mean over ranks 1..5 first
        report = figure[figure["metric"] == metric]
        assert sorted(report["step"].unique()) == steps[1:]
        for (group, step), values in per_run.groupby(level=["group", "step_b"]):
            row = report[(report["group"] == group) & (report["step"] == step)].iloc[0]
            assert row["n"] == 2
            assert row[["mean", "lo", "hi"]].to_numpy(dtype=float) == pytest.approx(t_band(values), rel=1e-12)


def test_summary_csv_final_metrics(clean_sweep, clean_report) -> None:
    runs = _run_tables(clean_sweep, "metrics/train.csv")
    evals = runs[(runs["source"] == "eval") & (runs["split"] == "test")]
    summary = pd.read_csv(clean_report.out / "summary.csv")
    for group in ("adam", "sgd"):
        final = evals[(evals["group"] == group) & (evals["step"] == evals["step"].max())]["loss"]
        row = summary[(summary["group"] == group) & (summary["metric"] == "final_test_loss")].iloc[0]
        assert row[["mean", "lo", "hi"]].to_numpy(dtype=float) == pytest.approx(t_band(final), rel=1e-12)
        assert row["sd"] == pytest.approx(final.std(ddof=1))
    assert {
        "final_lambda_max",
        "final_lambda_max_over_ws",
        "mean_displacement_plain",
        "mean_displacement_cluster",
        "final_ipr_normalized",
    } <= set(summary["metric"])
    disp = summary.set_index(["group", "metric"])["mean"]
    for group in ("adam", "sgd"):  # the fake runs' cluster-aware value halves ranks 4 and 5
        assert disp[(group, "mean_displacement_cluster")] < disp[(group, "mean_displacement_plain")]


def test_flat_minima_panels_are_the_means_of_the_run_tables(clean_sweep, clean_report) -> None:
    summary = _run_tables(clean_sweep, "analysis/summary.csv")
    summary["spectral_range"] = summary["lambda_max"] - summary["lambda_min"]
    train = _run_tables(clean_sweep, "metrics/train.csv")
    evals = train[train["source"] == "eval"].pivot_table(
        index=["group", "run", "step"], columns="split", values="loss"
    )
    evals["loss_gap"] = evals["test"] - evals["train"]
    gaps = evals.reset_index()
    for figure, metric, frame in (
        ("ws_bound", "ws_bound_exact", summary),
        ("ws_bound", "lambda_max_over_ws_exact", summary),
        ("spectral_range", "spectral_range", summary),
        ("gap", "loss_gap", gaps),
    ):
        report = pd.read_csv(clean_report.out / f"{figure}.csv")
        report = report[report["metric"] == metric]
        assert len(report) == frame.groupby(["group", "step"]).ngroups, (figure, metric)
        for (group, step), values in frame.groupby(["group", "step"])[metric]:
            row = report[(report["group"] == group) & (report["step"] == step)].iloc[0]
            assert row[["mean", "lo", "hi"]].to_numpy(dtype=float) == pytest.approx(t_band(values), rel=1e-9)
    final = pd.read_csv(clean_report.out / "summary.csv").set_index(["group", "metric"])["mean"]
    for group in ("adam", "sgd"):
        last = summary[(summary["group"] == group) & (summary["step"] == summary["step"].max())]
        assert final[(group, "final_spectral_range")] == pytest.approx(last["spectral_range"].mean())
        assert final[(group, "final_ws_bound_exact")] == pytest.approx(last["ws_bound_exact"].mean())
        last_gap = gaps[(gaps["group"] == group) & (gaps["step"] == gaps["step"].max())]
        assert final[(group, "final_loss_gap")] == pytest.approx(last_gap["loss_gap"].mean())


def test_a_regularized_sweep_says_which_loss_the_hessian_is_of(tmp_path: Path) -> None:
    import yaml

    from hessdyn.store import RunDir

    sweep = tmp_path / "sweep"
    make_sweep(sweep, optimizers=("sgd",), analyzed=False)
    assert "Hessian of the data loss" not in (build(sweep).out / "index.html").read_text(encoding="utf-8")
    hydra = RunDir(find_run_dirs(sweep)[0]).hydra_config
    config = yaml.safe_load(hydra.read_text(encoding="utf-8"))
    hydra.write_text(
        yaml.safe_dump({**config, "regularizer": {"name": "hsr", "beta": 0.1}}), encoding="utf-8"
    )
    page = (build(sweep).out / "index.html").read_text(encoding="utf-8")
    assert 'class="note"' in page and "regularizer=hsr" in page and "Hessian of the data loss" in page


@pytest.mark.slow
def test_output_is_deterministic(tmp_path: Path) -> None:
    first, second = tmp_path / "a" / "sweep", tmp_path / "b" / "sweep"
    for root in (first, second):
        make_sweep(root, optimizers=("sgd",), analyzed=False)
        build(root, formats=["png", "svg", "pdf"])
    names = sorted(p.name for p in (first / "report").iterdir())
    assert {"loss.png", "loss.svg", "loss.pdf"} <= set(names)  # report.formats
    assert b"<svg" in (first / "report" / "loss.svg").read_bytes()[:2000]
    assert (first / "report" / "loss.pdf").read_bytes().startswith(b"%PDF")
    for name in names:
        a, b = (first / "report" / name).read_bytes(), (second / "report" / name).read_bytes()
        if name in ("index.html", "runs.csv"):  # they name the sweep folder
            a, b = a.replace(str(first).encode(), b""), b.replace(str(second).encode(), b"")
        assert a == b, f"{name} differs between two identical builds"


@pytest.mark.slow
def test_every_figure_is_deterministic(clean_sweep: Path, clean_report, tmp_path: Path) -> None:
    copy = tmp_path / "sweep"
    shutil.copytree(clean_sweep, copy, ignore=shutil.ignore_patterns("report"))
    build(copy)
    names = sorted(p.name for p in clean_report.out.iterdir())
    assert names == sorted(p.name for p in (copy / "report").iterdir())
    for name in names:
        a, b = (clean_report.out / name).read_bytes(), (copy / "report" / name).read_bytes()
        if name in ("index.html", "runs.csv"):  # they name the sweep folder
            a, b = a.replace(str(clean_sweep).encode(), b""), b.replace(str(copy).encode(), b"")
        assert a == b, f"{name} differs between two builds of the same sweep"


def test_batch_norm_runs_are_compared_with_their_threshold_through_the_batch_statistics_lambda_max(
    tmp_path: Path,
) -> None:
    """Issue 17, item 6: where summary.csv has lambda_max_trained (a batch-norm net), the stability figure
    plots it, not the eval-mode λmax, against 2/η, its ratio is of it, the caption names the group, and the
    eigenvalue figure (the analysis' mode) draws no threshold for it."""
    sweep = tmp_path / "sweep"
    runs = make_sweep(sweep, optimizers=("sgd", "momentum"))
    trained = {}
    for run in runs:
        if "momentum" not in run.name:
            continue
        path = run / "analysis" / "summary.csv"
        summary = pd.read_csv(path)
        summary["lambda_max_trained"] = 0.1 * summary["lambda_max"] + 1.0
        summary["stability_mode"] = "batch_statistics"
        summary["sharpness_lr"] = summary["lr"] * summary["lambda_max_trained"]
        write_table(path, table("summary"), summary.to_dict("records"))
        trained[run.name] = summary.set_index("step")
    result = build(sweep)
    stability = pd.read_csv(result.out / "stability.csv")
    mom, sgd = stability[stability.group == "momentum"], stability[stability.group == "sgd"]
    assert set(mom.metric) >= {"lambda_max_trained", "stability_threshold"} and "lambda_max" not in set(
        mom.metric
    )
    assert "lambda_max" in set(sgd.metric) and "lambda_max_trained" not in set(sgd.metric)
    ratio = mom[(mom.metric == "stability_ratio") & mom.run.isna()].set_index("step")["mean"]
    expected = pd.concat(
        [t["lambda_max_trained"] / t["stability_threshold"] for t in trained.values()], axis=1
    )
    np.testing.assert_allclose(ratio.sort_index(), expected.mean(axis=1).sort_index(), rtol=1e-12)
    eig = pd.read_csv(result.out / "eigenvalues.csv")
    assert set(eig[eig.metric == "stability_threshold"].group) == {"sgd"}
    page = (result.out / "index.html").read_text(encoding="utf-8")
    assert "for the batch-norm nets (momentum) the Hessian with batch norm normalizing" in page
