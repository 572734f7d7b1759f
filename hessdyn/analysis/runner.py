"""Analyze one run: checkpoints in step order, resumable, never mixing settings.

Each checkpoint's result is committed as two files (see :class:`hessdyn.store.AnalysisDir`): its
eigenvectors, then its rows (whose presence marks the step done). The tables are rebuilt from those
records after every checkpoint, and the trajectory tables from the eigenvector files at the end, so a run
killed at any moment and rerun produces the same tables as an uninterrupted one: the warm start of a
checkpoint always reads the previous checkpoint's vectors back from disk (float32), in both cases.

Under a distributed launch (``analysis.distributed``) every rank runs the same steps on its shard of the
Hessian set; rank 0 alone touches the analysis folder (lock, records, vectors, tables) and broadcasts what
it reads there (what is done, the warm-start vectors), so the ranks take the same decisions.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from hessdyn import threads as thread_policy
from hessdyn.analysis.checkpoint import (
    CheckpointInputs,
    CheckpointResult,
    flat_parameters,
    hessian_mode,
    trained_hessian,
)
from hessdyn.analysis.distributed import check_distributable
from hessdyn.analysis.groups import RunWork, after_run, analyze_checkpoint
from hessdyn.analysis.loading import RunContext, open_run
from hessdyn.analysis.settings import (
    analysis_complete,
    changed_settings,
    select_checkpoints,
    settings_dict,
    settings_fingerprint,
)
from hessdyn.analysis.tables import write_step_tables
from hessdyn.commands.jobs import describe_os_error, traceback_to_log_files
from hessdyn.config import schema as s
from hessdyn.config.errors import HessdynError
from hessdyn.curvature import NonFiniteCurvature
from hessdyn.parallel import DistributedContext
from hessdyn.runtime import resolve_device, resolve_dtype
from hessdyn.store import ANALYSIS_FORMAT, EXTRA_SETS_KEY, AnalysisDir, RunDir, pair_keys
from hessdyn.store.analysis_dir import COMPLETE
from hessdyn.training.run_record import versions

log = logging.getLogger("hessdyn.analyze")


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


def check_settings(adir: AnalysisDir, settings: s.AnalysisConfig, force: bool = False) -> None:
    """Refuse to mix results of different settings in one analysis folder."""
    if force:
        return
    old = adir.read_meta()
    if old is None:
        return
    if old.get("fingerprint") != settings_fingerprint(settings):
        changes = changed_settings(old.get("settings", {}), settings_dict(settings))
        shown = "; ".join(changes[:3]) + (" ..." if len(changes) > 3 else "")
        raise HessdynError(
            f"{adir.path} holds an analysis with other settings ({shown}); pass analysis.name=<new name> for a "
            "separate folder, or force=true to recompute it"
        )


def analyze_run(
    run_dir: str | Path,
    settings: s.AnalysisConfig,
    *,
    data_root: str | None = None,
    force: bool = False,
    progress: bool | None = None,
    on_checkpoint: Callable[[int], None] | None = None,
    dist: DistributedContext | None = None,
    threads: thread_policy.ThreadPolicy | None = None,
) -> AnalysisOutcome:
    """Analyze every selected checkpoint of ``run_dir`` not analyzed yet; returns what was done.

    One process (or one distributed launch) at a time per analysis folder: a second one gets a HessdynError
    naming the first. dist: this process's rank of a distributed launch (collective: every rank calls this
    with the same arguments); None for one process. threads: the process's thread policy (the CLI's),
    fitted to the run's model size, applied and recorded in analysis.json; None: the caller's own threads
    are used and recorded."""
    dctx = dist if dist is not None else DistributedContext.single()
    job = _Job(RunDir(run_dir), settings, data_root, force, progress, on_checkpoint, dctx, threads)
    if not job.run.path.is_dir():  # opening the run says what is wrong; a lock must not create the folder
        return job.analyze()
    with job.locked():
        return job.analyze()


def _on_writer(dist: DistributedContext, read: Callable[[], Any]) -> Any:
    """``read()`` on rank 0, its result (or its one-line HessdynError) on every rank."""
    if not dist.launched:
        return read()
    answer: tuple[bool, Any] = (True, None)
    if dist.is_writer:
        try:
            answer = (True, read())
        except HessdynError as exc:
            answer = (False, str(exc))
    ok, value = dist.broadcast_object(answer)
    if not ok:
        raise HessdynError(value)
    return value


@dataclass
class _Job:
    """One ``analyze_run`` call, as named steps: skip if done, open, record settings, analyze the pending
    checkpoints, finish (the metric groups' per-run tables and the final record)."""

    run: RunDir
    settings: s.AnalysisConfig
    data_root: str | None
    force: bool
    progress: bool | None
    on_checkpoint: Callable[[int], None] | None
    dist: DistributedContext
    threads: thread_policy.ThreadPolicy | None = None
    t0: float = field(default_factory=time.perf_counter)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def adir(self) -> AnalysisDir:
        return self.run.analysis(self.settings.name)

    @property
    def writer(self) -> bool:
        return self.dist.is_writer

    def on_writer(self, read: Callable[[], Any]) -> Any:
        return _on_writer(self.dist, read)

    def locked(self) -> ExitStack:
        """The analysis folder's lock, taken by rank 0 alone; its refusal (a HessdynError naming the process
        that holds it) is raised on every rank. Release it by closing the returned stack."""
        stack = ExitStack()
        try:
            self.on_writer(lambda: stack.enter_context(self.adir.lock("hessdyn analyze")))
        except BaseException:
            stack.close()
            raise
        return stack

    def outcome(
        self, analyzed: list[int], skipped: list[int], hvps: int, left_out: list[int]
    ) -> AnalysisOutcome:
        wall = time.perf_counter() - self.t0
        return AnalysisOutcome(
            self.run.path, self.adir.path, analyzed, skipped, COMPLETE, hvps, wall, left_out
        )

    def analyze(self) -> AnalysisOutcome:
        complete = self.on_writer(self._complete_already)
        if complete is not None:
            steps, left_out = complete
            return self.outcome([], steps, 0, left_out)
        self.on_writer(self._report_damaged_tables)
        ctx, steps, dtype = self._open()
        done = self.on_writer(lambda: self._record_settings(ctx, steps))
        todo = [st for st in steps if st not in done]
        hvps = self._analyze_pending(ctx, steps, done, todo, dtype)
        analyzed = self._finish(ctx, steps, dtype)
        return self.outcome(
            [st for st in todo if st in analyzed], done, hvps, [st for st in steps if st not in analyzed]
        )

    # ------------------------------------------------------------------------------------- steps
    def _complete_already(self) -> tuple[list[int], list[int]] | None:
        """(selected steps, steps left out) when nothing new is to be done (same settings, same checkpoints,
        finished): then the run is skipped without loading any data. Refuses other settings."""
        check_settings(self.adir, self.settings, self.force)
        if self.force or not analysis_complete(self.run, self.settings):
            return None
        steps = select_checkpoints(self.run.checkpoint_steps(), self.settings)
        log.info("%s: analysis complete already (%d checkpoints)", self.run.path, len(steps))
        return steps, list((self.adir.read_meta() or {}).get("skipped_steps", []))

    def _report_damaged_tables(self) -> None:
        """A finished analysis whose tables fail their checks is finished again: say which and why."""
        meta = None if self.force else self.adir.read_meta()
        if meta is None or meta.get("status") != COMPLETE:
            return
        for name, problem in self.adir.table_problems(meta).items():
            log.warning(
                "%s failed its check (%s); the tables are rebuilt from the per-checkpoint records",
                self.adir.table_path(name),
                problem,
            )

    def _forget_damaged(self, steps: list[int], num_params: int) -> None:
        """A done checkpoint whose record or eigenvectors fail their checks is analyzed again."""
        for st in steps:
            if not self.adir.is_done(st):
                continue
            damage = self.adir.step_problem(st, num_params)
            if damage is not None:
                log.warning("%s; checkpoint %d is analyzed again", damage, st)
                self.adir.forget_step(st)

    def _open(self) -> tuple[RunContext, list[int], torch.dtype]:
        dist = (
            self.dist
            if self.dist.launched
            else DistributedContext.single(resolve_device(self.settings.device))
        )
        ctx = open_run(self.run.path, self.settings, dist.device, self.data_root, dist)
        steps = select_checkpoints([st for st, _ in ctx.checkpoints], self.settings)
        if not steps:
            raise HessdynError(
                f"no checkpoint of {self.run.path} matches analysis.checkpoints/steps; available: "
                f"{[st for st, _ in ctx.checkpoints]}"
            )
        if self.dist.world_size > 1:
            check_distributable(ctx, self.settings, self.dist.world_size)
        if self.force and self.writer:
            for st in steps:
                self.adir.forget_step(st)
        return ctx, steps, resolve_dtype(self.settings.dtype)

    def _record_settings(self, ctx: RunContext, steps: list[int]) -> list[int]:
        """analysis.json before any checkpoint: settings, Hessian mode and set, versions; returns the steps
        done already (rank 0 only)."""
        settings = self.settings
        num_params = sum(p.numel() for p in ctx.new_model().parameters() if p.requires_grad)
        meta = (self.adir.read_meta() or {}) if not self.force else {}
        for key in (
            "status",
            "finished",
            "tables",
            "eigvecs",
        ):  # in progress again: nothing of a finished analysis holds
            meta.pop(key, None)
        meta.update(
            {
                "format": ANALYSIS_FORMAT,
                "fingerprint": settings_fingerprint(settings),
                "settings": settings_dict(settings),
                "run_dir": str(self.run.path),
                "train_status": ctx.record.get("status"),
                "hessian_mode": hessian_mode(settings, ctx.config.optimizer).to_dict(),
                "stability_mode": _stability_mode(ctx, settings),
                "hessian_set": {
                    "size": int(ctx.hessian_set.y.shape[0]),
                    "seed": settings.hessian_set_seed,
                    "of": len(ctx.data.train),
                },
                "num_params": num_params,
                "threads": self._threads(num_params).to_dict(),
                "device": str(ctx.device),
                "ranks": self.dist.world_size,
                "dtype": str(resolve_dtype(settings.dtype)).replace("torch.", ""),
                "versions": versions(),
                "selected_steps": steps,
            }
        )
        meta.setdefault("checkpoints", {})
        self.meta = meta
        self.adir.write_meta(meta)
        self._forget_damaged(steps, int(meta["num_params"]))
        return [st for st in steps if self.adir.is_done(st)]

    def _threads(self, num_params: int) -> thread_policy.ThreadPolicy:
        if self.threads is None:
            return thread_policy.current_policy()
        policy = thread_policy.fit_workload(self.threads, num_params)
        thread_policy.apply(policy)
        return policy

    def _analyze_pending(
        self, ctx: RunContext, steps: list[int], done: list[int], todo: list[int], dtype: torch.dtype
    ) -> int:
        """Analyze ``todo`` in order, committing each; returns the products spent."""
        show = self.progress if self.progress is not None else sys.stderr.isatty()
        bar = tqdm(
            total=len(steps),
            initial=len(done),
            disable=not (show and self.writer),
            desc=f"analyze {self.run.path.name[:24]}",
            unit="ckpt",
        )
        total_hvps = 0
        try:
            for st in todo:
                # warm start from the last checkpoint with eigenvectors, as rank 0 reads it back from disk
                prev, saved = self.on_writer(partial(self._saved_previous, steps, st))
                record = self._analyze_or_skip(ctx, dtype, st, prev, saved)
                bar.update(1)
                if self.writer:
                    self.meta["checkpoints"][str(st)] = record
                    self.adir.write_meta(self.meta)
                if "skipped" in record:
                    continue
                total_hvps += record["hvps"]
                if self.writer:
                    write_step_tables(self.adir, steps)
                bar.set_postfix(step=st, lam=f"{record['lambda_max']:.4g}", hvps=record["hvps"])
                if self.on_checkpoint is not None and self.writer:
                    self.on_checkpoint(st)
        finally:
            bar.close()
        return total_hvps

    def _saved_previous(self, steps: list[int], step: int) -> tuple[int | None, dict[str, Any] | None]:
        """The last analyzed checkpoint before ``step`` and its saved vectors (CPU), or (None, None)."""
        earlier = self.adir.analyzed(steps[: steps.index(step)])
        if not earlier:
            return None, None
        if not self.adir.is_done(earlier[-1]):
            raise RuntimeError(f"checkpoint {earlier[-1]} must be analyzed before {step}")
        return earlier[-1], self.adir.load_vectors(earlier[-1])

    def _analyze_or_skip(
        self, ctx: RunContext, dtype: torch.dtype, step: int, prev: int | None, saved: dict[str, Any] | None
    ) -> dict[str, Any]:
        """Analyze checkpoint ``step`` (its analysis.json record), or record why it cannot be."""
        try:
            return _analyze_one(ctx, self.adir, self.settings, dtype, step, prev, saved)
        except NonFiniteCurvature as exc:  # raised on every rank alike: the sum of the shares is not finite
            reason = f"{exc} (a diverged checkpoint? a float32 overflow may pass with analysis.dtype=float64)"
            if self.writer:
                log.warning("%s: checkpoint %d left out: %s", self.run.path, step, reason)
                self.adir.mark_skipped(step, reason)
            return {"skipped": reason}

    def _finish(self, ctx: RunContext, steps: list[int], dtype: torch.dtype) -> list[int]:
        """The per-run tables of every metric group and the final analysis.json; returns the analyzed steps."""
        analyzed = self.on_writer(lambda: self._analyzed_or_refuse(steps))
        if self.writer:
            write_step_tables(self.adir, steps)
        after_run(RunWork(ctx, self.adir, self.settings, dtype, steps, analyzed))
        if not self.writer:
            return analyzed
        checkpoints = self.meta["checkpoints"]
        unconverged = sum(1 for st in steps if not checkpoints.get(str(st), {}).get("all_converged", True))
        self.meta.update(
            status=COMPLETE,
            finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            unconverged_checkpoints=unconverged,
            skipped_steps=[st for st in steps if st not in analyzed],
            tables=self.adir.table_records(),  # what the tables are checked against when read back
            eigvecs=self.adir.vector_sizes(steps),  # likewise the eigenvector files (their sizes)
        )
        self.adir.write_meta(self.meta)
        if unconverged:
            log.warning(
                "%s: %d checkpoint(s) have eigenpairs that did not reach tol=%g within max_hvps=%d "
                "(flagged converged=False in spectrum.csv)",
                self.run.path,
                unconverged,
                self.settings.tol,
                self.settings.max_hvps,
            )
        return analyzed

    def _analyzed_or_refuse(self, steps: list[int]) -> list[int]:
        analyzed = self.adir.analyzed(steps)
        if not analyzed:
            raise HessdynError(
                f"{self.run.path}: no selected checkpoint could be analyzed ({self.adir.skip_reason(steps[0])}); "
                "see analysis.json"
            )
        return analyzed


def _stability_mode(ctx: RunContext, settings: s.AnalysisConfig) -> dict[str, Any] | None:
    """analysis.json's record of the Hessian the stability columns are of: the loss as trained (batch
    statistics, training batch size) for a batch-norm net, None where that is the analysis' Hessian."""
    trained = trained_hessian(
        settings, ctx.config.optimizer, ctx.new_model(), ctx.train_batch_size, int(ctx.hessian_set.y.shape[0])
    )
    return trained.to_dict() if trained is not None else None


def _warm_start(
    ctx: RunContext, prev: int | None, saved: dict[str, Any] | None, names: tuple[str, ...]
) -> dict[str, Any]:
    """The previous analyzed checkpoint's vectors (warm start, update alignment; the groups' extra eigenpair
    sets as ``start_extra``) from its vector file ``saved``, and its parameters."""
    out: dict[str, Any] = dict.fromkeys(("start_top", "start_bottom", "previous_theta", "previous_top"))
    out["start_extra"] = {}
    if prev is None or saved is None:
        return out
    out["previous_top"] = out["start_top"] = saved["eigenvectors"].to(device=ctx.device, dtype=torch.float64)
    if saved.get("bottom_eigenvectors") is not None and saved["bottom_eigenvectors"].numel():
        out["start_bottom"] = saved["bottom_eigenvectors"].to(device=ctx.device, dtype=torch.float64)
    for name in saved.get(EXTRA_SETS_KEY, []):
        out["start_extra"][name] = saved[pair_keys(name)[1]].to(device=ctx.device, dtype=torch.float64)
    prev_model, _ = ctx.load(prev)
    out["previous_theta"] = flat_parameters(prev_model, names)
    return out


def _vector_payload(step: int, result: CheckpointResult, names: tuple[str, ...]) -> dict[str, Any]:
    """A checkpoint's eigenvector file: top (and bottom) pairs, and every group's extra eigenpair sets."""
    bottom = result.bottom
    payload: dict[str, Any] = {
        "step": step,
        "eigenvalues": result.top.eigenvalues.cpu(),
        "eigenvectors": result.top.eigenvectors.to(torch.float32).cpu(),
        "bottom_eigenvalues": bottom.eigenvalues.cpu() if bottom is not None else torch.empty(0),
        "bottom_eigenvectors": bottom.eigenvectors.to(torch.float32).cpu()
        if bottom is not None
        else torch.empty(0),
        "param_names": list(names),
        EXTRA_SETS_KEY: list(result.extra),
    }
    for name, pairs in result.extra.items():
        values_key, vectors_key = pair_keys(name)
        payload[values_key] = pairs.eigenvalues.cpu()
        payload[vectors_key] = pairs.eigenvectors.to(torch.float32).cpu()
    return payload


def _analyze_one(
    ctx: RunContext,
    adir: AnalysisDir,
    settings: s.AnalysisConfig,
    dtype: torch.dtype,
    step: int,
    prev: int | None,
    saved: dict[str, Any] | None,
) -> dict[str, Any]:
    """Analyze checkpoint ``step`` and commit it (eigenvectors, then rows; rank 0 only); returns its
    analysis.json record. prev, saved: the warm start's checkpoint and its vector file (None: none)."""
    model, ckpt = ctx.load(step)
    names = tuple(n for n, p in model.named_parameters() if p.requires_grad)
    inputs = CheckpointInputs(
        step=step,
        epoch=float(ckpt.get("epoch", math.nan)),
        model=model,
        checkpoint=ckpt,
        hessian_set=ctx.hessian_set,
        settings=settings,
        optimizer_cfg=ctx.config.optimizer,
        dtype=dtype,
        train_batch_size=ctx.train_batch_size,
        train_size=len(ctx.data.train),
        dist=ctx.dist,
        **_warm_start(ctx, prev, saved, names),
    )
    result = analyze_checkpoint(inputs)
    if ctx.dist.is_writer:
        adir.save_vectors(step, _vector_payload(step, result, names))
        adir.write_step_record(step, result.rows)
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
    runs: list[Path],
    settings_of: Callable[[Path], s.AnalysisConfig],
    *,
    data_root: str | None = None,
    force: bool = False,
    progress: bool | None = None,
    dist: DistributedContext | None = None,
    threads: thread_policy.ThreadPolicy | None = None,
) -> dict[Path, AnalysisOutcome | str]:
    """Analyze ``runs``, each with ``settings_of(run)``; a failing run (its settings or its analysis) is
    reported in one line and the others go on (on every rank alike: a run's refusal reaches every rank; a
    failed collective ends them all). In a single process an unexpected error of one run is one line too
    (its traceback goes to the log file); a failed run's outcome is its error line."""
    outcomes: dict[Path, AnalysisOutcome | str] = {}
    for run_dir in runs:
        try:
            outcomes[run_dir] = analyze_run(
                run_dir,
                settings_of(run_dir),
                data_root=data_root,
                force=force,
                progress=progress,
                dist=dist,
                threads=threads,
            )
        except HessdynError as exc:
            log.error("%s: %s", run_dir, exc)
            outcomes[run_dir] = str(exc)
        except Exception as exc:  # a bug or an OS error in one run must not cost the others their analysis
            if dist is not None and dist.launched:  # the other ranks wait in a collective: end them all
                raise
            line = describe_os_error(exc) if isinstance(exc, OSError) else f"{type(exc).__name__}: {exc}"
            line = line.splitlines()[0] if line else type(exc).__name__
            log.error("%s: %s", run_dir, line)
            traceback_to_log_files(f"{run_dir}: {line}", exc)
            outcomes[run_dir] = line
    return outcomes
