"""The training-time sharpness probe (``trainer.sharpness``): λmax at step resolution, for progressive
sharpening and the edge of stability (Cohen et al. 2021, arXiv:2103.00065; 2022, arXiv:2207.14484).

At steps 0, ``every``, 2·``every``, ... — on the weights after that many updates, the weights the
checkpoint of that step holds — the probe computes the top-``top_k`` eigenpairs of the Hessian of the
training loss on a fixed probe set and, with ``preconditioned`` for Adam/AdamW/RMSprop, of the
preconditioned Hessian P^{-1/2}·H·P^{-1/2} with the optimizer's current P (Adam's with the first-moment bias
correction folded in, :func:`hessdyn.trajectory.adam_preconditioner`); λmax(P⁻¹H) is compared with
(2+2β1)/((1−β1)η). Each solve (:func:`hessdyn.solvers.eigsh_topk`) starts from the previous probe's
eigenvectors of the same operator, so a probe costs a few Hessian-vector products once the first has
converged. Rows go to ``metrics/sharpness.csv`` (registered in :mod:`hessdyn.store.registry`).

Which Hessian: that of the loss as trained. The mean cross-entropy over the probe set plus (c/2)·||θ||² for
a weight decay c the optimizer adds to its gradient (SGD, momentum, Adam, RMSprop; not AdamW, whose decay is
decoupled), so that 2/η is the right threshold; batch norm normalizes with batch statistics, over batches of
the training batch size in probe-set order (:class:`hessdyn.curvature.HessianMode` ``batchnorm="train"``,
the ``analysis.batchnorm=train`` mode); running statistics are never updated; dropout is off (a loss with
dropout is random and has no Hessian).

Nothing of the training state is touched: the operator differentiates a private copy of the model, the
solver draws its random vectors from its own seeded generator, the optimizer state is only read. The
vectors the next probe starts from travel in every checkpoint (``"sharpness"``, written atomically with
it), so a resumed run repeats the probe sequence bit for bit on the CPU.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from hessdyn.config import schema as s
from hessdyn.config.errors import ConfigValueError, HessdynError
from hessdyn.curvature import (
    DiagonalConjugate,
    EmpiricalRisk,
    HessianMode,
    HessianOperator,
    NonFiniteCurvature,
    ParamLayout,
    select_hessian_set,
)
from hessdyn.data import TensorSplit
from hessdyn.data.shapes import dataset_shape
from hessdyn.models import build_model
from hessdyn.solvers import EigenResult, eigsh_topk
from hessdyn.training.metrics_log import MetricsLog
from hessdyn.training.optimizers import (
    Operator,
    StabilityThreshold,
    coupled_weight_decay,
    preconditioner_inverse_sqrt,
    stability_threshold,
)

log = logging.getLogger("hessdyn.train")

STATE_FORMAT = 1  # of the checkpoint's "sharpness" entry
_SOLVER_SEED_OFFSET = 3_000_017  # the solver's random vectors at step s come from this + s
# Without batch norm the loss and its curvature do not depend on how the probe set is batched: one batch
# keeps the gradient graph between products (HessianOperator), larger sets are cut to bound memory.
_MAX_PROBE_BATCH = 8192


# ------------------------------------------------------------------------------------------ checks
def check_probe_sizes(cfg: s.SharpnessConfig, num_params: int, n_train: int) -> None:
    """``top_k`` within the trainable parameters, the probe set within the training split."""
    if cfg.top_k > num_params:
        raise ConfigValueError(
            "trainer.sharpness.top_k",
            f"must be <= the model's {num_params} trainable parameters, got {cfg.top_k}",
        )
    if cfg.set is not None and cfg.set > n_train:
        raise ConfigValueError(
            "trainer.sharpness.set",
            f"must be <= the {n_train} examples of the training split (null = all of them), got {cfg.set}",
        )


def check_probe_config(cfg: s.TrainConfig) -> None:
    """The probe's sizes against the model and the training split the config implies, without reading data:
    the config preflight's check (the session checks again against the loaded data)."""
    probe = cfg.trainer.sharpness
    if not probe.enabled:
        return
    shape = dataset_shape(cfg.dataset)
    with torch.device("meta"):  # shapes only: no memory, no initialization
        model = build_model(cfg.model, shape.input_shape, shape.num_classes)
    check_probe_sizes(probe, ParamLayout.from_model(model).numel, shape.n_train)


# ------------------------------------------------------------------------------------- measurement
@dataclass(frozen=True)
class SharpnessMeasurement:
    """One probe: the top eigenpairs of each operator at ``step`` (``preconditioned`` None when not asked
    for, or before the optimizer's first update), the learning rate of the next update and its threshold;
    ``wall_s`` per operator (the Hessian's includes building the operator)."""

    step: int
    hessian: EigenResult
    preconditioned: EigenResult | None
    lr: float
    threshold: StabilityThreshold
    wall_s: Mapping[str, float]

    def results(self) -> dict[Operator, EigenResult]:
        out: dict[Operator, EigenResult] = {"hessian": self.hessian}
        if self.preconditioned is not None:
            out["preconditioned"] = self.preconditioned
        return out

    def rows(self) -> list[dict[str, Any]]:
        """``metrics/sharpness.csv`` rows, ranks 1-based."""
        rows = []
        for operator, res in self.results().items():
            threshold = self.threshold.value if self.threshold.operator == operator else None
            for i in range(res.eigenvalues.shape[0]):
                rows.append(
                    {
                        "step": self.step,
                        "operator": operator,
                        "rank": i + 1,
                        "eigenvalue": float(res.eigenvalues[i]),
                        "residual": float(res.residuals[i]),
                        "converged": bool(res.converged[i]),
                        "hvps": res.num_hvps,
                        "threshold": threshold,
                        "lr": self.lr,
                        "wall_s": self.wall_s[operator],
                    }
                )
        return rows


class SharpnessProbe:
    """The probe of one training session: its probe set, Hessian mode, warm-start vectors and table."""

    def __init__(self, cfg: s.TrainConfig, train: TensorSplit, model: nn.Module, batch_size: int) -> None:
        """Raises ConfigValueError (naming the key) when ``top_k`` or the probe set does not fit."""
        self.cfg, self.optimizer_cfg = cfg.trainer.sharpness, cfg.optimizer
        check_probe_sizes(self.cfg, ParamLayout.from_model(model).numel, len(train))
        self.n_train = len(train)
        self.set = select_hessian_set(train.x, train.y, self.cfg.set, self.cfg.set_seed)
        n = int(self.set.y.shape[0])
        has_bn = any(isinstance(m, _BatchNorm) for m in model.modules())
        size = min(batch_size, n) if has_bn else min(_MAX_PROBE_BATCH, n)
        self.batch_size = None if size >= n else size
        self.mode = HessianMode(batchnorm="train", weight_decay=coupled_weight_decay(cfg.optimizer))
        self.operators: tuple[Operator, ...] = ("hessian",)
        if self.cfg.preconditioned and stability_threshold(cfg.optimizer, 1.0).operator == "preconditioned":
            self.operators += ("preconditioned",)
        self.dtype = next(model.parameters()).dtype
        # One private copy of the model for the whole run, refreshed with the current weights at each probe.
        self.risk = EmpiricalRisk(model, self.set.x, self.set.y, batch_size=self.batch_size, mode=self.mode)
        self.vectors: dict[str, torch.Tensor] = {}
        self.table: MetricsLog | None = None

    @classmethod
    def create(
        cls, cfg: s.TrainConfig, train: TensorSplit, model: nn.Module, batch_size: int
    ) -> SharpnessProbe | None:
        """The probe, or None when ``trainer.sharpness.every`` is null."""
        return cls(cfg, train, model, batch_size) if cfg.trainer.sharpness.enabled else None

    def provenance(self) -> dict[str, Any]:
        """What ``run.json`` records of the probe: its settings, the probe set and the Hessian mode."""
        indices = self.set.indices
        whole = int(indices.shape[0]) == self.n_train
        return {
            "every": self.cfg.every,
            "top_k": self.cfg.top_k,
            "operators": list(self.operators),
            "set_size": int(indices.shape[0]),
            "set_seed": self.cfg.set_seed,
            "set_indices": "all" if whole else [int(i) for i in indices.tolist()],
            "batch_size": self.batch_size,
            "hessian_mode": self.mode.to_dict(),
            "tol": self.cfg.tol,
            "guard_steps": self.cfg.guard_steps,
        }

    # ------------------------------------------------------------------------------ state, table
    def state(self) -> dict[str, Any]:
        """The checkpoint's ``"sharpness"`` entry: the vectors the next probe starts from."""
        return {
            "format": STATE_FORMAT,
            "set_indices": self.set.indices.clone(),
            "vectors": dict(self.vectors),
        }

    def restore(self, state: Mapping[str, Any] | None, where: Path) -> None:
        """Continue from a checkpoint's ``"sharpness"`` entry (``where`` names the checkpoint in errors)."""
        if state is None or state.get("format") != STATE_FORMAT:
            raise HessdynError(
                f"{where} has no sharpness-probe state of format {STATE_FORMAT}: the probe cannot continue "
                "its warm-started sequence; choose another name=..."
            )
        if not torch.equal(state["set_indices"].cpu(), self.set.indices):
            raise HessdynError(f"{where} was probed on another probe set; choose another name=...")
        self.vectors = {name: v.to(device=self.set.x.device) for name, v in state["vectors"].items()}

    def open_table(self, path: Path, resume_step: int | None) -> None:
        """Append to ``metrics/sharpness.csv``; rows after ``resume_step`` (probed before a kill) are dropped."""
        self.table = MetricsLog(path, resume_step, "sharpness")

    def flush(self) -> None:
        if self.table is not None:
            self.table.flush()

    def close(self) -> None:
        if self.table is not None:
            self.table.close()

    # ---------------------------------------------------------------------------------- probing
    def due(self, step: int) -> bool:
        assert self.cfg.every is not None
        return step % self.cfg.every == 0

    def __call__(
        self, step: int, model: nn.Module, optimizer: torch.optim.Optimizer, lr: float
    ) -> SharpnessMeasurement | None:
        """Probe at ``step`` if it is due, append its rows and keep its vectors; None when not due or when the
        curvature is not finite there (logged; the next probe starts cold)."""
        if not self.due(step):
            return None
        try:
            measured = self.measure(step, model, optimizer, lr)
        except NonFiniteCurvature as exc:
            log.warning("sharpness probe at step %d left out: %s", step, exc)
            self.vectors = {}
            return None
        self.vectors = {name: res.eigenvectors.to(self.dtype) for name, res in measured.results().items()}
        if self.table is not None:
            for row in measured.rows():
                self.table.write(**row)
        return measured

    def measure(
        self, step: int, model: nn.Module, optimizer: torch.optim.Optimizer, lr: float
    ) -> SharpnessMeasurement:
        """The probe's eigenpairs at the current weights of ``model``, warm-started; writes nothing."""
        start = time.perf_counter()
        self.risk.refresh(model)
        op = HessianOperator(self.risk)
        hessian = self._solve(op, "hessian", step)
        wall = {"hessian": time.perf_counter() - start}
        preconditioned = None
        if "preconditioned" in self.operators:
            start = time.perf_counter()
            d = preconditioner_inverse_sqrt(
                self.optimizer_cfg, optimizer.state_dict(), model, op.layout.names
            )
            if d is not None:  # Adam has no preconditioner before its first update
                preconditioned = self._solve(DiagonalConjugate(op, d), "preconditioned", step)
                wall["preconditioned"] = time.perf_counter() - start
        threshold = stability_threshold(self.optimizer_cfg, lr)
        return SharpnessMeasurement(step, hessian, preconditioned, lr, threshold, wall)

    def _solve(self, op: HessianOperator | DiagonalConjugate, operator: Operator, step: int) -> EigenResult:
        return eigsh_topk(
            op,
            self.cfg.top_k,
            tol=self.cfg.tol,
            max_hvps=self.cfg.max_hvps,
            v0=self.vectors.get(operator),
            seed=_SOLVER_SEED_OFFSET + step,
            guard_steps=self.cfg.guard_steps,
        )
