"""Where this process stands in an analysis: its rank, its device, its process group, whether it writes.

One object for one process and for a distributed launch alike, so an analysis is written once: it builds
its operators and its risk through the context, writes files only when `is_writer`, and shares decisions
(which checkpoints to analyze, a warm-start block read from disk) through `broadcast_object`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from hessdyn.curvature.build import Curvature, curvature_operator
from hessdyn.curvature.distributed import (
    DistributedRisk,
    collective_failure,
    distributed_curvature_operator,
    distributed_risk,
)
from hessdyn.curvature.hessian import HvpBackend
from hessdyn.curvature.mode import HessianMode
from hessdyn.curvature.operator import CurvatureOperator
from hessdyn.curvature.risk import EmpiricalRisk, HessianSet
from hessdyn.curvature.sharding import Shard, shard_hessian_set


@dataclass(frozen=True)
class DistributedContext:
    """rank in [0, world_size); local_rank: rank on this node (picks the CUDA device); device: this rank's
    device; backend: "gloo", "nccl" or "none" (one process, no group); group: the data process group of
    the curvature products (None: the default group, or no group when not launched); timeout_s: how
    long a collective waits; launched: whether process groups exist (False only for `single`)."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str
    group: dist.ProcessGroup | None
    timeout_s: float
    launched: bool

    @classmethod
    def single(cls, device: torch.device | str = "cpu") -> DistributedContext:
        """One process, no process group: operators are the plain single-process ones."""
        return cls(0, 1, 0, torch.device(device), "none", None, float("inf"), False)

    @property
    def is_writer(self) -> bool:
        """Rank 0 alone writes files (run folders, tables, logs meant for the user)."""
        return self.rank == 0

    def shard(self, hset: HessianSet, batch_size: int | None = None) -> Shard:
        """This rank's contiguous shard of `hset` (whole batches of `batch_size` when given)."""
        return shard_hessian_set(hset, self.rank, self.world_size, batch_size=batch_size)

    def curvature_operator(
        self,
        model: nn.Module,
        hset: HessianSet,
        *,
        curvature: Curvature = "hessian",
        batch_size: int | None = None,
        params: Sequence[str] | None = None,
        mode: HessianMode | None = None,
        dtype: torch.dtype | None = None,
        backend: HvpBackend = "auto",
    ) -> CurvatureOperator:
        """The curvature of the mean loss over all of `hset`: over this rank's shard, summed over the ranks
        when launched, the plain operator otherwise. `model` must already be on `self.device`."""
        kw: dict[str, Any] = dict(
            curvature=curvature, batch_size=batch_size, params=params, mode=mode, dtype=dtype, backend=backend
        )
        if not self.launched:
            return curvature_operator(model, hset.x, hset.y, **kw)
        return distributed_curvature_operator(model, self.shard(hset, batch_size), group=self.group, **kw)

    def risk(
        self,
        model: nn.Module,
        hset: HessianSet,
        *,
        batch_size: int | None = None,
        params: Sequence[str] | None = None,
        mode: HessianMode | None = None,
        dtype: torch.dtype | None = None,
    ) -> EmpiricalRisk | DistributedRisk:
        """Mean loss and gradient over all of `hset` (see `curvature_operator` for the split)."""
        kw: dict[str, Any] = dict(batch_size=batch_size, params=params, mode=mode, dtype=dtype)
        if not self.launched:
            return EmpiricalRisk(model, hset.x, hset.y, **kw)
        return distributed_risk(model, self.shard(hset, batch_size), group=self.group, **kw)

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank (pickled over the default gloo group); `obj` itself when not launched.

        For decisions every rank must take alike but only rank 0 can take, e.g. which checkpoints are left to
        analyze when rank 0 writes the tables that say so."""
        if not self.launched:
            return obj
        box = [obj if self.is_writer else None]
        try:
            dist.broadcast_object_list(box, src=0)
        except RuntimeError as exc:
            raise collective_failure(self.rank, self.world_size, "broadcast from rank 0", exc) from exc
        return box[0]

    def barrier(self) -> None:
        """Wait until every rank gets here (a no-op when not launched)."""
        if not self.launched:
            return
        try:
            dist.barrier()
        except RuntimeError as exc:
            raise collective_failure(self.rank, self.world_size, "barrier", exc) from exc
