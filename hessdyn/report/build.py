"""Building a report folder: tables → figures and CSVs → page, written aside and swapped in whole
(see :mod:`hessdyn.report.folders`)."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd

import hessdyn
from hessdyn.config.schema import ReportConfig
from hessdyn.report.aggregate import summary_data
from hessdyn.report.figures import FIGURES, FigureResult
from hessdyn.report.folders import building, check_replaceable, staging_dir, swap_in
from hessdyn.report.page import PageContent, PageFigure, render_page
from hessdyn.report.provenance import analysis_settings, environment_settings, run_settings
from hessdyn.report.runs import RunInfo
from hessdyn.report.style import RC, FigureOptions, group_colors
from hessdyn.report.tables import SweepTables, load_tables
from hessdyn.store import RunStatus

log = logging.getLogger("hessdyn")

_INT_COLUMNS = (
    "step",
    "rank",
    "t_w",
    "t",
    "tau",
    "n",
    "seed",
    "steps",
    "total_steps",
    "analyzed_checkpoints",
)
_SAVE_METADATA = {
    "png": {"Software": None},
    "svg": {"Date": None},
    "pdf": {"CreationDate": None, "ModDate": None},
}


@dataclass(frozen=True)
class ReportResult:
    out: Path
    figures: tuple[str, ...]  # names drawn
    not_computed: tuple[str, ...]
    warnings: tuple[str, ...]
    runs: int
    problems: tuple[str, ...] = ()  # files that failed their checks, left out (the command then fails)


# ---------------------------------------------------------------------------------------- content
def _ordered_groups(runs: Sequence[RunInfo]) -> list[str]:
    return list(dict.fromkeys(r.group for r in runs))


def _note(run: RunInfo, analyzed: bool, has_train: bool) -> str:
    status = RunStatus.parse(run.status)
    if status.broken:
        why = f"{run.status}"
        if status is RunStatus.INTERRUPTED:
            gone = run.record.get("status") == RunStatus.RUNNING.value
            why += " (its process is gone" if gone else " (stopped"
            why += "; rerun its hessdyn train command to resume)"
        return (
            f"{why}: drawn individually (dashed), not in means or the summary"
            if has_train or analyzed
            else f"{why}: no data"
        )
    if run.problems:
        return "files failed their checks: " + "; ".join(run.problems)
    if not has_train and not analyzed:
        return "no data yet"
    parts = ["training"] + (["curvature"] if analyzed else [])
    text = " and ".join(parts)
    if status is RunStatus.RUNNING:
        text += " (up to its current step; not in the summary)"
    elif status is not RunStatus.COMPLETED:
        text += f" ({run.status}: not in means)"
    if not analyzed:
        text += "; not analyzed"
    return text


def runs_table(tables: SweepTables) -> pd.DataFrame:
    """``runs.csv``: one row per run with its status, whether it is analyzed, and how it enters the figures."""
    trained = set(tables.train["run"]) if not tables.train.empty else set()
    rows = []
    for r in tables.runs:
        analyzed = tables.analyzed_steps.get(r.name, 0) > 0
        rows.append(
            {
                "run": r.name,
                "run_dir": str(r.path),
                "group": r.group,
                "seed": r.seed,
                "status": r.status,
                "steps": r.record.get("steps"),
                "total_steps": r.record.get("total_steps"),
                "analyzed": analyzed,
                "analyzed_checkpoints": tables.analyzed_steps.get(r.name, 0),
                "in_means": r.in_means,
                "note": _note(r, analyzed, r.name in trained),
                "overrides": " ".join(r.overrides),
            }
        )
    return pd.DataFrame(rows)


def reading_notes(runs: Sequence[RunInfo]) -> list[str]:
    """Notes the figures need: with a regularizer in training, which loss the analysed Hessian is of."""
    regularized = sorted({str(r.config.get("regularizer.name")) for r in runs} - {"none", "None"})
    if not regularized:
        return []
    return [
        f"Some runs were trained with a regularizer ({', '.join('regularizer=' + n for n in regularized)}): "
        "their curvature is measured like every run's, as the Hessian of the data loss (mean cross-entropy "
        "over the Hessian set) without the penalty. The penalty and its bound per minibatch are in "
        "metrics/train.csv (penalty, batch_ws_bound)."
    ]


def _names(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def partial_data_warnings(tables: SweepTables, runs: pd.DataFrame) -> list[str]:
    """One line per kind of incomplete data (not analyzed, diverged, running, ...)."""
    out = list(tables.problems) + list(tables.warnings)
    by_status = {
        RunStatus.parse(s): list(runs.loc[runs["status"] == s, "run"]) for s in runs["status"].unique()
    }
    if by_status.get(RunStatus.DIVERGED):
        out.append(
            f"diverged: {_names(by_status[RunStatus.DIVERGED])}; drawn individually up to divergence, left out of means and the summary"
        )
    if by_status.get(RunStatus.FAILED):
        out.append(
            f"failed: {_names(by_status[RunStatus.FAILED])}; drawn individually where they have data, left out of means"
        )
    if by_status.get(RunStatus.INTERRUPTED):
        out.append(
            f"interrupted (Ctrl-C, SIGTERM, or killed: the process is gone): "
            f"{_names(by_status[RunStatus.INTERRUPTED])}; drawn individually up to where they stopped, left "
            "out of means; rerun their hessdyn train command to resume them"
        )
    if by_status.get(RunStatus.RUNNING):
        out.append(
            f"still running: {_names(by_status[RunStatus.RUNNING])}; included up to their current step, not in the summary"
        )
    if by_status.get(RunStatus.UNKNOWN):
        out.append(
            "no run.json (the job stopped before training began, or it is starting): "
            f"{_names(by_status[RunStatus.UNKNOWN])}"
        )
    unanalyzed = list(runs.loc[~runs["analyzed"] & (runs["status"] != RunStatus.UNKNOWN.value), "run"])
    if unanalyzed:
        out.append(
            f"not analyzed yet: {_names(unanalyzed)}; left out of the curvature figures (run hessdyn analyze)"
        )
    dup = runs.dropna(subset=["seed"]).groupby(["group", "seed"])["run"].apply(list)
    for (group, seed), names in dup.items():
        if len(names) > 1:
            out.append(
                f"group {group} has {len(names)} runs with seed {int(seed)} ({_names(names)}); each counts as a sample"
            )
    return out


def write_csv(frame: pd.DataFrame, path: Path, groups: Sequence[str]) -> None:
    """Tidy CSV with integer columns as integers and rows in report group order."""
    frame = frame.copy()
    if "group" in frame.columns and not frame.empty:
        frame["group"] = pd.Categorical(
            frame["group"], categories=list(groups) + sorted(set(frame["group"]) - set(groups)), ordered=True
        )
        frame = frame.sort_values("group", kind="stable")
    for column in _INT_COLUMNS:
        if column in frame.columns and not frame.empty:
            values = pd.to_numeric(frame[column], errors="coerce")
            finite = values[np.isfinite(values)]
            if (finite == np.round(finite)).all():
                frame[column] = values.round().astype("Int64")
    frame.to_csv(path, index=False, lineterminator="\n")


def _save(result: FigureResult, folder: Path, formats: Sequence[str]) -> list[str]:
    files = []
    for fmt in ["png", *[f for f in formats if f != "png"]]:
        name = f"{result.name}.{fmt}"
        result.figure.savefig(folder / name, format=fmt, metadata=_SAVE_METADATA[fmt])
        files.append(name)
    return files


def write_report(
    folder: Path,
    runs: list[RunInfo],
    settings: ReportConfig,
    source: str,
    extra_settings: dict[str, str] | None = None,
) -> ReportResult:
    """Write every report file into ``folder`` (which must exist); returns what was drawn."""
    tables = load_tables(runs, settings.analysis_name)
    groups = _ordered_groups(runs)
    colors = group_colors(groups)
    options = FigureOptions(
        groups=tuple(groups),
        colors=colors,
        level=settings.band,
        ranks=settings.top_ranks,
        log_x=settings.log_x,
        batch_curves=settings.batch_curves,
        density_snapshots=settings.density_snapshots,
    )
    runs_frame = runs_table(tables)
    warnings = partial_data_warnings(tables, runs_frame)
    for w in warnings:
        log.warning("report: %s", w)
    write_csv(runs_frame, folder / "runs.csv", groups)
    summary = summary_data(tables, settings.top_ranks, settings.band)
    write_csv(summary, folder / "summary.csv", groups)

    page_figures, not_computed = [], []
    with matplotlib.rc_context(RC):
        for spec in FIGURES:
            result = spec.draw(tables, options)
            if result is None:
                not_computed.append((spec.title, spec.needs))
                continue
            files = _save(result, folder, settings.formats)
            write_csv(result.data, folder / f"{result.name}.csv", groups)
            page_figures.append(
                PageFigure(
                    result.name,
                    result.title,
                    result.caption,
                    files[0],
                    f"{result.name}.csv",
                    tuple(files[1:]),
                )
            )
            result.figure.clear()

    report_settings = {
        "group_by": settings.group_by,
        "band": f"{settings.band:g} (t-interval of the mean over seeds)",
        "top_ranks": str(settings.top_ranks),
        "log_x": str(settings.log_x).lower(),
        "batch_curves": str(settings.batch_curves).lower(),
        "density_snapshots": str(settings.density_snapshots),
        "formats": ", ".join(settings.formats),
        "analysis_name": settings.analysis_name,
        **(extra_settings or {}),
    }
    provenance = [
        (p, p)
        for p in (".hydra/overrides.yaml", ".hydra/config.yaml", "report.log")
        if (folder / p).is_file()
    ]
    content = PageContent(
        title=f"hessdyn report: {Path(source).name or source}",
        source=source,
        group_by=settings.group_by,
        level=settings.band,
        runs=runs_frame,
        summary=summary,
        figures=page_figures,
        not_computed=not_computed,
        run_settings=run_settings(runs),
        analysis_settings=analysis_settings(tables.analysis_json),
        environment_settings=environment_settings(runs),
        report_settings=report_settings,
        warnings=warnings,
        notes=reading_notes(runs),
        files=provenance,
        version=hessdyn.__version__,
    )
    (folder / "index.html").write_text(render_page(content, colors), encoding="utf-8")
    return ReportResult(
        out=folder,
        figures=tuple(f.name for f in page_figures),
        not_computed=tuple(t for t, _ in not_computed),
        warnings=tuple(warnings),
        runs=len(runs),
        problems=tuple(tables.problems),
    )


def build_report(
    runs: list[RunInfo],
    out: Path,
    settings: ReportConfig,
    source: str,
    staging: Path | None = None,
    extra_settings: dict[str, str] | None = None,
) -> ReportResult:
    """Write the report of ``runs`` to ``out``, replacing a previous report there.

    ``staging`` is a folder beside ``out`` to write into (created if None); it becomes ``out`` at the end,
    and is removed if writing fails.
    """
    out = Path(out).resolve()
    check_replaceable(out)
    staging = staging_dir(out) if staging is None else Path(staging)
    try:
        with building(out):  # one build of a report at a time; what killed builds left is removed
            result = write_report(staging, runs, settings, source, extra_settings)
            swap_in(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info(
        "report: %s (%d figures, %d not computed)",
        out / "index.html",
        len(result.figures),
        len(result.not_computed),
    )
    return ReportResult(
        out, result.figures, result.not_computed, result.warnings, result.runs, result.problems
    )
