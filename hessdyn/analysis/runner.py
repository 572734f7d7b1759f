"""Analyze one run: checkpoints in step order, resumable, never mixing settings.

Each checkpoint's result is committed as two files: ``eigvecs/step_XXXXXXXX.pt`` (written first) and
``steps/step_XXXXXXXX.json`` (its rows; its presence marks the step done). The tables are rebuilt from
those records after every checkpoint, and the trajectory tables from the eigenvector files at the end, so a
run killed at any moment and rerun produces the same tables as an uninterrupted one: the warm start of a
checkpoint always reads the previous checkpoint's vectors back from disk (float32), in both cases.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from hessdyn.analysis.loading import RunContext, open_run
from hessdyn.analysis.nulls import compute_nulls
from hessdyn.analysis.per_checkpoint import (
    CheckpointInputs,
    analyze_checkpoint,
    flat_parameters,
    hessian_mode,
)
from hessdyn.analysis.reparam_panel import reparam_rows
from hessdyn.analysis.settings import (
    analysis_dir,
    changed_settings,
    metric_on,
    select_checkpoints,
    settings_dict,
    settings_fingerprint,
)
from hessdyn.analysis.tables import write_step_tables, write_trajectory_tables
from hessdyn.config import schema as s
from hessdyn.config.errors import HessdynError
from hessdyn.curvature import NonFiniteCurvature
from hessdyn.io import atomic_torch_save, atomic_write_json, exclusive_dir, read_json, safe_torch_load
from hessdyn.runtime import resolve_device, resolve_dtype
from hessdyn.training.checkpoints import list_checkpoints
from hessdyn.training.run_record import versions

log = logging.getLogger("hessdyn.analyze")

FORMAT = "hessdyn-analysis-v1"


@dataclass(frozen=True)
class AnalysisOutcome:
    run_dir: Path
    out_dir: Path
    analyzed: list[int]  # steps computed now
    skipped: list[int]  # steps already done
    status: str  # complete | partial
    hvps: int
    wall_s: float
    # not analyzable (curvature not finite); analysis.json says why
    left_out: list[int] = field(default_factory=list)


def check_settings(out_dir: Path, settings: s.AnalysisConfig, force: bool = False) -> None:
    """Refuse to mix results of different settings in one analysis folder."""
    meta_path = out_dir / "analysis.json"
    if not meta_path.exists() or force:
        return
    old = read_json(meta_path)
    if old.get("fingerprint") != settings_fingerprint(settings):
        changes = changed_settings(old.get("settings", {}), settings_dict(settings))
        shown = "; ".join(changes[:3]) + (" ..." if len(changes) > 3 else "")
        raise HessdynError(
            f"{out_dir} holds an analysis with other settings ({shown}); pass analysis.name=<new name> for a "
            "separate folder, or force=true to recompute it"
        )


def _step_file(out_dir: Path, kind: str, step: int) -> Path:
    suffix = "pt" if kind == "eigvecs" else "json"
    return out_dir / kind / f"step_{step:08d}.{suffix}"


def _is_done(out_dir: Path, step: int) -> bool:
    """Analyzed, or found not analyzable (its step record says why)."""
    return _step_file(out_dir, "steps", step).exists() and (
        _step_file(out_dir, "eigvecs", step).exists() or _skip_reason(out_dir, step) is not None
    )


def _skip_reason(out_dir: Path, step: int) -> str | None:
    path = _step_file(out_dir, "steps", step)
    return read_json(path).get("skipped") if path.exists() else None


def _analyzed(out_dir: Path, steps: list[int]) -> list[int]:
    """The steps with eigenvectors on disk (done and not skipped), in order."""
    return [st for st in steps if _step_file(out_dir, "eigvecs", st).exists() and _is_done(out_dir, st)]


def _load_vectors(out_dir: Path, step: int) -> dict[str, Any]:
    return safe_torch_load(_step_file(out_dir, "eigvecs", step))


def analyze_run(
    run_dir: str | Path,
    settings: s.AnalysisConfig,
    *,
    data_root: str | None = None,
    force: bool = False,
    progress: bool | None = None,
    on_checkpoint: Callable[[int], None] | None = None,
) -> AnalysisOutcome:
    """Analyze every selected checkpoint of ``run_dir`` not analyzed yet; returns what was done.

    One process at a time per analysis folder: a second one gets a HessdynError naming the first."""
    run_dir = Path(run_dir)
    kwargs = dict(data_root=data_root, force=force, progress=progress, on_checkpoint=on_checkpoint)
    if not run_dir.is_dir():  # _analyze_run says what is wrong; a lock must not create the folder
        return _analyze_run(run_dir, settings, **kwargs)
    with exclusive_dir(analysis_dir(run_dir, settings.name), "hessdyn analyze"):
        return _analyze_run(run_dir, settings, **kwargs)


def _analyze_run(
    run_dir: Path,
    settings: s.AnalysisConfig,
    *,
    data_root: str | None,
    force: bool,
    progress: bool | None,
    on_checkpoint: Callable[[int], None] | None,
) -> AnalysisOutcome:
    t0 = time.perf_counter()
    out_dir = analysis_dir(run_dir, settings.name)
    check_settings(out_dir, settings, force)
    meta_path = out_dir / "analysis.json"
    if meta_path.exists() and not force:
        # Nothing new to do (same settings, same checkpoints, finished): skip without loading any data.
        old = read_json(meta_path)
        steps_now = select_checkpoints([st for st, _ in list_checkpoints(run_dir)], settings)
        if (
            old.get("status") == "complete"
            and old.get("fingerprint") == settings_fingerprint(settings)
            and old.get("selected_steps") == steps_now
            and all(_is_done(out_dir, st) for st in steps_now)
        ):
            log.info("%s: analysis complete already (%d checkpoints)", run_dir, len(steps_now))
            return AnalysisOutcome(
                run_dir,
                out_dir,
                [],
                steps_now,
                "complete",
                0,
                time.perf_counter() - t0,
                list(old.get("skipped_steps", [])),
            )
    device = resolve_device(settings.device)
    dtype = resolve_dtype(settings.dtype)
    ctx = open_run(run_dir, settings, device, data_root)
    steps = select_checkpoints([st for st, _ in ctx.checkpoints], settings)
    if not steps:
        raise HessdynError(
            f"no checkpoint of {run_dir} matches analysis.checkpoints/steps; available: "
            f"{[st for st, _ in ctx.checkpoints]}"
        )
    if force:
        for st in steps:
            _step_file(out_dir, "steps", st).unlink(missing_ok=True)
    fingerprint = settings_fingerprint(settings)
    meta = read_json(meta_path) if meta_path.exists() and not force else {}
    meta.update(
        {
            "format": FORMAT,
            "fingerprint": fingerprint,
            "settings": settings_dict(settings),
            "run_dir": str(run_dir),
            "train_status": ctx.record.get("status"),
            "hessian_mode": hessian_mode(settings, ctx.config.optimizer).to_dict(),
            "hessian_set": {
                "size": int(ctx.hessian_set.y.shape[0]),
                "seed": settings.hessian_set_seed,
                "of": len(ctx.data.train),
            },
            "num_params": sum(p.numel() for p in ctx.new_model().parameters() if p.requires_grad),
            "device": str(device),
            "dtype": str(dtype).replace("torch.", ""),
            "versions": versions(),
            "selected_steps": steps,
        }
    )
    meta.setdefault("checkpoints", {})
    atomic_write_json(meta_path, meta)

    done = [st for st in steps if _is_done(out_dir, st)]
    todo = [st for st in steps if st not in done]
    show = progress if progress is not None else sys.stderr.isatty()
    bar = tqdm(
        total=len(steps),
        initial=len(done),
        disable=not show,
        desc=f"analyze {run_dir.name[:24]}",
        unit="ckpt",
    )
    total_hvps = 0
    try:
        for st in todo:
            earlier = _analyzed(out_dir, steps[: steps.index(st)])
            prev = earlier[-1] if earlier else None  # warm start from the last checkpoint with eigenvectors
            try:
                result_meta = _analyze_one(ctx, out_dir, settings, dtype, st, prev)
            except NonFiniteCurvature as exc:
                reason = (
                    f"{exc} (a diverged checkpoint? a float32 overflow may pass with analysis.dtype=float64)"
                )
                log.warning("%s: checkpoint %d left out: %s", run_dir, st, reason)
                atomic_write_json(_step_file(out_dir, "steps", st), {"step": st, "skipped": reason})
                meta["checkpoints"][str(st)] = {"skipped": reason}
                atomic_write_json(meta_path, meta)
                bar.update(1)
                continue
            total_hvps += result_meta["hvps"]
            meta["checkpoints"][str(st)] = result_meta
            atomic_write_json(meta_path, meta)
            write_step_tables(out_dir, steps)
            bar.update(1)
            bar.set_postfix(step=st, lam=f"{result_meta['lambda_max']:.4g}", hvps=result_meta["hvps"])
            if on_checkpoint is not None:
                on_checkpoint(st)
    finally:
        bar.close()

    analyzed = _analyzed(out_dir, steps)
    if not analyzed:
        raise HessdynError(
            f"{run_dir}: no selected checkpoint could be analyzed ({_skip_reason(out_dir, steps[0])}); "
            "see analysis.json"
        )
    write_step_tables(out_dir, steps)
    if metric_on(settings, s.MetricGroup.localization):
        compute_nulls(ctx, out_dir, settings, dtype)
    if metric_on(settings, s.MetricGroup.reparam):
        reparam_rows(ctx, out_dir, settings, dtype, analyzed[-1])
    write_trajectory_tables(out_dir, steps, settings)
    unconverged = sum(
        1 for st in steps if not meta["checkpoints"].get(str(st), {}).get("all_converged", True)
    )
    meta.update(
        status="complete",
        finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        unconverged_checkpoints=unconverged,
        skipped_steps=[st for st in steps if st not in analyzed],
    )
    atomic_write_json(meta_path, meta)
    if unconverged:
        log.warning(
            "%s: %d checkpoint(s) have eigenpairs that did not reach tol=%g within max_hvps=%d "
            "(flagged converged=False in spectrum.csv)",
            run_dir,
            unconverged,
            settings.tol,
            settings.max_hvps,
        )
    return AnalysisOutcome(
        run_dir,
        out_dir,
        [st for st in todo if st in analyzed],
        done,
        "complete",
        total_hvps,
        time.perf_counter() - t0,
        [st for st in steps if st not in analyzed],
    )


def _analyze_one(
    ctx: RunContext,
    out_dir: Path,
    settings: s.AnalysisConfig,
    dtype: torch.dtype,
    step: int,
    prev: int | None,
) -> dict[str, Any]:
    model, ckpt = ctx.load(step)
    names = tuple(n for n, p in model.named_parameters() if p.requires_grad)
    start_top = start_bottom = previous_theta = previous_top = None
    if prev is not None:
        if not _is_done(out_dir, prev):
            raise RuntimeError(f"checkpoint {prev} must be analyzed before {step}")
        saved = _load_vectors(out_dir, prev)
        previous_top = saved["eigenvectors"].to(device=ctx.device, dtype=torch.float64)
        start_top = previous_top
        if saved.get("bottom_eigenvectors") is not None and saved["bottom_eigenvectors"].numel():
            start_bottom = saved["bottom_eigenvectors"].to(device=ctx.device, dtype=torch.float64)
        prev_model, _ = ctx.load(prev)
        previous_theta = flat_parameters(prev_model, names)
    inputs = CheckpointInputs(
        step=step,
        epoch=float(ckpt.get("epoch", math.nan)),
        model=model,
        checkpoint=ckpt,
        hessian_set=ctx.hessian_set,
        settings=settings,
        optimizer_cfg=ctx.config.optimizer,
        dtype=dtype,
        start_top=start_top,
        start_bottom=start_bottom,
        previous_theta=previous_theta,
        previous_top=previous_top,
    )
    result = analyze_checkpoint(inputs)
    bottom_vectors = (
        result.bottom.eigenvectors.to(torch.float32).cpu() if result.bottom is not None else torch.empty(0)
    )
    atomic_torch_save(
        _step_file(out_dir, "eigvecs", step),
        {
            "step": step,
            "eigenvalues": result.top.eigenvalues.cpu(),
            "eigenvectors": result.top.eigenvectors.to(torch.float32).cpu(),
            "bottom_eigenvalues": result.bottom.eigenvalues.cpu()
            if result.bottom is not None
            else torch.empty(0),
            "bottom_eigenvectors": bottom_vectors,
            "param_names": list(names),
        },
    )
    atomic_write_json(_step_file(out_dir, "steps", step), result.rows)
    summary = result.rows["summary"][0]
    return {
        "hvps": result.hvps,
        "wall_s": result.wall_s,
        "lambda_max": summary["lambda_max"],
        "all_converged": summary["all_converged"],
        "top_method": result.top.method,
        "top_hvps": result.top.num_hvps,
    }


def analyze_many(
    jobs: list[tuple[Path, s.AnalysisConfig]],
    *,
    data_root: str | None = None,
    force: bool = False,
    progress: bool | None = None,
) -> dict[Path, AnalysisOutcome | str]:
    """Analyze several (run, settings) pairs; a failing run is reported and the others go on."""
    outcomes: dict[Path, AnalysisOutcome | str] = {}
    for run_dir, settings in jobs:
        try:
            outcomes[run_dir] = analyze_run(
                run_dir, settings, data_root=data_root, force=force, progress=progress
            )
        except HessdynError as exc:
            log.error("%s: %s", run_dir, exc)
            outcomes[run_dir] = str(exc)
    return outcomes
