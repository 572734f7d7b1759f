"""One checkpoint's analysis as data: its inputs, the state its metric groups share, and its result.

Nothing here touches files, so a checkpoint's result depends only on its inputs (model, data, settings,
start block). The metric groups that fill the result are in :mod:`hessdyn.analysis.per_checkpoint`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from hessdyn.config import schema as s
from hessdyn.curvature import (
    CurvatureOperator,
    EmpiricalRisk,
    HessianMode,
    HessianSet,
    has_batchnorm,
)
from hessdyn.curvature.distributed import DistributedRisk
from hessdyn.parallel import DistributedContext
from hessdyn.solvers import DenseSpectrum, EigenResult, Which, dense_eigh, eigsh_topk, full_spectrum


@dataclass
class CheckpointInputs:
    step: int
    epoch: float
    model: nn.Module
    checkpoint: dict[str, Any]
    hessian_set: HessianSet
    settings: s.AnalysisConfig
    optimizer_cfg: s.OptimizerConfig
    dtype: torch.dtype
    start_top: torch.Tensor | None = None  # (k, P) previous checkpoint's eigenvectors (warm start)
    start_bottom: torch.Tensor | None = None
    previous_theta: torch.Tensor | None = None  # flat parameters at the previous analyzed checkpoint
    previous_top: torch.Tensor | None = None  # eigenvectors at the previous analyzed checkpoint
    # the previous checkpoint's extra eigenpair sets (name -> (k, P)), e.g. the noise group's, for warm starts
    start_extra: dict[str, torch.Tensor] = field(default_factory=dict)
    train_batch_size: int | None = None  # B of the run's training (min(batch_size, N); N for full batch)
    train_size: int | None = None  # N, the run's training-split size
    # this process's rank: the operators and the risk are over its shard, summed over the ranks
    dist: DistributedContext = field(default_factory=DistributedContext.single)


@dataclass
class CheckpointResult:
    step: int
    top: EigenResult
    bottom: EigenResult | None
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # step table -> its rows
    hvps: int = 0
    wall_s: float = 0.0
    extra: dict[str, EigenResult] = field(
        default_factory=dict
    )  # a group's eigenpair sets, saved with the top


def pair_fields(res: EigenResult, i: int) -> dict[str, Any]:
    """The columns every eigenpair table shares for pair ``i`` of ``res``: 1-based rank, eigenvalue, residual,
    relative residual and the convergence flag."""
    return {
        "rank": i + 1,
        "eigenvalue": float(res.eigenvalues[i]),
        "residual": float(res.residuals[i]),
        "rel_residual": float(res.relative_residuals[i]),
        "converged": bool(res.converged[i]),
    }


def hessian_mode(settings: s.AnalysisConfig, optimizer_cfg: s.OptimizerConfig) -> HessianMode:
    # AdamW's decay is decoupled from the loss, so it has no Hessian term; others add (c/2)||θ||².
    decay = (
        optimizer_cfg.weight_decay if settings.include_weight_decay and optimizer_cfg.name != "adamw" else 0.0
    )
    return HessianMode(batchnorm=settings.batchnorm.value, weight_decay=decay)


@dataclass(frozen=True)
class TrainedHessian:
    """The loss as trained, where it is not the analysis' own objective: batch norm normalizing with the
    statistics of each batch of ``batch_size`` examples of the Hessian set (None: the whole set in one
    batch), the mean over batches weighted by their size; dropout stays off (a random loss has no Hessian)
    and the weight-decay term is the analysis' own. The stability columns compare this Hessian with 2/η."""

    mode: HessianMode
    batch_size: int | None

    def to_dict(self) -> dict[str, Any]:
        return {**self.mode.to_dict(), "batch_size": self.batch_size}


def trained_hessian(
    settings: s.AnalysisConfig,
    optimizer_cfg: s.OptimizerConfig,
    model: nn.Module,
    train_batch_size: int | None,
    hessian_set_size: int,
) -> TrainedHessian | None:
    """The Hessian SGD steps on, when the analysis' Hessian is a different function: None for a network
    without batch norm (its loss does not depend on the mode or the batching) and when the analysis itself
    takes batch statistics over batches of the training batch size."""
    if not has_batchnorm(model):
        return None

    def batches(size: int | None) -> int | None:  # None: the whole Hessian set in one batch
        return None if size is None or size >= hessian_set_size else size

    trained = batches(train_batch_size)
    if settings.batchnorm == s.BatchNormMode.train and batches(settings.batch_size) == trained:
        return None
    mode = dataclasses.replace(hessian_mode(settings, optimizer_cfg), batchnorm="train")
    return TrainedHessian(mode, trained)


def build_operator(
    model: nn.Module,
    hset: HessianSet,
    settings: s.AnalysisConfig,
    mode: HessianMode,
    dtype: torch.dtype,
    dist: DistributedContext | None = None,
) -> CurvatureOperator:
    """The analysis' curvature of ``model`` over ``hset`` (over this rank's shard, summed over the ranks,
    when ``dist`` is launched)."""
    ctx = dist if dist is not None else DistributedContext.single()
    return ctx.curvature_operator(
        model,
        hset,
        curvature=settings.curvature.value,
        batch_size=settings.batch_size,
        mode=mode,
        dtype=dtype,
    )


def flat_parameters(model: nn.Module, names: tuple[str, ...]) -> torch.Tensor:
    params = dict(model.named_parameters())
    return torch.cat([params[n].detach().reshape(-1).to(torch.float64) for n in names])


@dataclass
class Checkpoint:
    """What the metric groups of one checkpoint share: the operator, the dense spectrum on the dense path,
    the top (and bottom) eigenpairs, and the rows they add to (``summary`` is the one summary row)."""

    inputs: CheckpointInputs
    mode: HessianMode
    op: CurvatureOperator
    seed: int  # base seed of this checkpoint's solvers and estimators
    full: DenseSpectrum | None  # the whole spectrum (solver=dense), else None
    top: EigenResult | None = None
    bottom: EigenResult | None = None
    # the Hessian of the loss as trained where it differs from ``op`` (batch-norm nets), else None
    trained_op: CurvatureOperator | None = None
    gradient: torch.Tensor | None = None  # (P,) of the loss on the Hessian set
    theta: torch.Tensor | None = None  # (P,) float64 parameters
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, EigenResult] = field(default_factory=dict)  # eigenpair sets saved beside the top ones
    _risk: EmpiricalRisk | DistributedRisk | None = None

    @property
    def settings(self) -> s.AnalysisConfig:
        return self.inputs.settings

    @property
    def stability_op(self) -> CurvatureOperator:
        """The Hessian the stability columns are of: the loss as trained (``trained_op``) where it differs
        from the analysis' operator, else that operator."""
        return self.trained_op if self.trained_op is not None else self.op

    @property
    def num_hvps(self) -> int:
        """Products spent on this checkpoint, over both operators."""
        return self.op.num_hvps + (self.trained_op.num_hvps if self.trained_op is not None else 0)

    def risk(self) -> EmpiricalRisk | DistributedRisk:
        """The objective the operator differentiates (Hessian set, batching, mode, dtype), built once."""
        if self._risk is None:
            inp = self.inputs
            self._risk = inp.dist.risk(
                inp.model,
                inp.hessian_set,
                batch_size=self.settings.batch_size,
                mode=self.mode,
                dtype=inp.dtype,
            )
        return self._risk

    def local_risk(self) -> EmpiricalRisk:
        """The risk of one process, for groups that need per-example quantities (refused when distributed)."""
        risk = self.risk()
        if not isinstance(risk, EmpiricalRisk):
            raise TypeError("this metric group needs per-example gradients, which are not split over ranks")
        return risk

    def top_pairs(self) -> EigenResult:
        """The top eigenpairs (the ``spectrum`` group, always first, computes them)."""
        if self.top is None:
            raise RuntimeError("the spectrum group runs first: the top eigenpairs are not computed yet")
        return self.top

    def table_rows(self, name: str) -> list[dict[str, Any]]:
        return self.rows.setdefault(name, [])

    def solve(
        self,
        k: int,
        which: Which,
        start: torch.Tensor | None,
        seed: int,
        op: CurvatureOperator | None = None,
    ) -> EigenResult:
        """Top or bottom ``k`` eigenpairs of the curvature operator (or of ``op``, e.g. a gradient-noise
        operator, with the same solver settings): from the dense spectrum on the dense path, else by the
        configured solver (warm-started from ``start`` when it has the right shape)."""
        cfg = self.settings
        if self.full is not None and op is None:  # one P×P diagonalization serves top, bottom and traces
            return dense_eigh(self.op, k, which=which, tol=cfg.tol, spectrum=self.full)
        target = self.op if op is None else op
        v0 = start if (cfg.warm_start and start is not None and start.shape == (k, target.size)) else None
        return eigsh_topk(
            target,
            k,
            which=which,
            tol=cfg.tol,
            max_hvps=cfg.max_hvps,
            v0=v0,
            seed=seed,
            method=cfg.solver.value,
        )


def open_checkpoint(inp: CheckpointInputs) -> Checkpoint:
    """The operator of ``inp``'s model over its Hessian set, in the analysis' Hessian mode, and for a
    batch-norm net the operator of the loss as trained (:func:`trained_hessian`)."""
    cfg = inp.settings
    mode = hessian_mode(cfg, inp.optimizer_cfg)
    op = build_operator(inp.model, inp.hessian_set, cfg, mode, inp.dtype, inp.dist)
    full = full_spectrum(op) if cfg.solver == s.Solver.dense else None
    trained = trained_hessian(
        cfg, inp.optimizer_cfg, inp.model, inp.train_batch_size, int(inp.hessian_set.y.shape[0])
    )
    trained_op = None
    if trained is not None:
        trained_op = inp.dist.curvature_operator(
            inp.model,
            inp.hessian_set,
            curvature=cfg.curvature.value,
            batch_size=trained.batch_size,
            mode=trained.mode,
            dtype=inp.dtype,
        )
    return Checkpoint(inp, mode, op, cfg.seed + inp.step, full, trained_op=trained_op)
