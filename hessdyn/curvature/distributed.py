"""Data-parallel curvature: products, loss and gradient of the whole Hessian set, summed over ranks.

Under an initialized torch.distributed process group every rank holds one `Shard` of the Hessian set and
a local operator over it. For an operator whose matrix is a mean over its examples (`mean_over_examples`:
the Hessian, the GGN, a gradient second moment) the matrix of the whole set is

    A = Σ_r (N_r / N) · A_r,      A_r the same operator over rank r's N_r examples,

exactly (weight decay included: its term is the same on every rank and the shares sum to 1). A product
A·V is therefore one all_reduce (SUM) of the ranks' share-weighted partial products, and the loss and
gradient likewise; uneven shards need nothing special.

Why every rank can run the solvers unchanged: an all_reduce hands every rank the same bits (each element
is reduced once and copied, in gloo's and NCCL's ring and tree algorithms; NCCL's maintainers state that
all ranks always get the same value, NVIDIA/nccl#855), and the solvers draw their start vectors and
probes from seeded CPU generators (`torch.Generator().manual_seed(seed)`, `solvers.probes.rademacher`),
identical on every rank of one torch build. A deterministic solver fed identical products then takes
identical steps everywhere. That chain is checked rather than assumed: every product first compares an
exact checksum of its input block across ranks (`check_inputs`), so a divergence (a mixed torch build, a
CPU whose kernels round differently) stops every rank at once with `RanksDiverged`, instead of ranks
issuing different collectives and hanging.

Failures are collective too: a rank whose share raises (out of memory, a bad batch) still joins the
reduction with a failure flag, so every rank stops with an error instead of waiting; a rank that dies or
stops responding makes the others' collective fail (at once for a closed connection, after the process
group's timeout for a silent peer), reported as `RankFailure` with one line.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from hessdyn.curvature.build import Curvature, curvature_operator
from hessdyn.curvature.hessian import HvpBackend
from hessdyn.curvature.mode import HessianMode
from hessdyn.curvature.operator import CurvatureOperator
from hessdyn.curvature.params import ParamLayout
from hessdyn.curvature.risk import EmpiricalRisk, LossFn, LossGradient
from hessdyn.curvature.sharding import Shard

_CHECKSUM_CHUNK = 1 << 22  # entries per checksum pass: bounds the int64 temporaries at 32 MB
_INT_OF_SIZE = {8: torch.int64, 4: torch.int32, 2: torch.int16, 1: torch.int8}


class RankFailure(RuntimeError):
    """A collective failed (a rank died or timed out) or another rank failed its share; one-line message."""


class RanksDiverged(RuntimeError):
    """Ranks asked for products of different vectors: their solvers no longer take the same steps."""


def collective_failure(rank: int, world_size: int, what: str, exc: BaseException) -> RankFailure:
    """The one-line error for a collective that raised: which rank, during what, and torch's first line
    without its source-location prefix."""
    text = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
    text = re.sub(r"^\[[^\]]*\.(?:cpp|cc|hpp|h):\d+\]\s*", "", text)
    text = text.split(". This is typically caused", 1)[0]
    return RankFailure(
        f"rank {rank} of {world_size}: a collective failed during a {what} (another rank died or stopped "
        f"responding): {text}"
    )


def bit_checksum(t: torch.Tensor) -> torch.Tensor:
    """(2,) int64 checksums of the bit pattern of `t`: Σ_k b_k and Σ_k (2k+1)·b_k over its flat entries b_k
    read as integers, in two's-complement arithmetic (wrapping), so they are exact and do not depend on
    the summation order or the device. Equal tensors give equal checksums; one differing entry changes the
    first, two entries that differ by opposite amounts change the second."""
    flat = t.detach().contiguous().reshape(-1).view(_INT_OF_SIZE[t.element_size()]).to(torch.int64)
    total = torch.zeros((), dtype=torch.int64, device=t.device)
    weighted = torch.zeros((), dtype=torch.int64, device=t.device)
    weights = torch.arange(min(flat.numel(), _CHECKSUM_CHUNK), dtype=torch.int64, device=t.device) * 2 + 1
    for start in range(0, flat.numel(), _CHECKSUM_CHUNK):
        chunk = flat[start : start + _CHECKSUM_CHUNK]
        part = chunk.sum()
        # Σ (2(start + i) + 1)·b = Σ (2i + 1)·b + 2·start·Σ b
        weighted += (chunk * weights[: chunk.numel()]).sum() + 2 * start * part
        total += part
    return torch.stack([total, weighted])


@dataclass(frozen=True)
class ReduceTimings:
    """Where one rank's time went over `calls` reductions, in seconds: computing its share (`compute_s`),
    in the all_reduce of the results (`reduce_s`, including waiting for slower ranks) and in the input
    checks (`check_s`, one small all_reduce per product)."""

    compute_s: float
    reduce_s: float
    check_s: float
    calls: int

    @property
    def communication_share(self) -> float:
        """(reduce_s + check_s) / total: the fraction of the time not spent computing."""
        total = self.compute_s + self.reduce_s + self.check_s
        return (self.reduce_s + self.check_s) / total if total > 0 else 0.0


class ShardReducer:
    """Sums share-weighted per-rank tensors over a process group; a failure on one rank stops all ranks.

    num_local: examples on this rank; num_total: examples in the whole set (the same on every rank). The
    constructor checks, collectively, that the local counts add up to num_total.
    """

    def __init__(self, num_local: int, num_total: int, group: dist.ProcessGroup | None = None) -> None:
        if not dist.is_initialized():
            raise RuntimeError("distributed curvature needs an initialized torch.distributed process group")
        self.group = group
        self.rank = dist.get_rank(group)
        self.world_size = dist.get_world_size(group)
        self.share = num_local / num_total
        self._compute_s = self._reduce_s = self._check_s = 0.0
        self._calls = 0
        self._verify_counts(num_local, num_total)

    def _device(self) -> torch.device:
        backend = dist.get_backend(self.group)
        return torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")

    def _verify_counts(self, num_local: int, num_total: int) -> None:
        dev = self._device()
        counts = torch.tensor([num_local], dtype=torch.int64, device=dev)
        totals = torch.tensor([num_total, ~num_total], dtype=torch.int64, device=dev)
        self.all_reduce(counts, "shard check")
        self.all_reduce(totals, "shard check", op=dist.ReduceOp.MAX)
        if int(totals[0]) != ~int(totals[1]):
            raise ValueError(f"rank {self.rank}: the ranks disagree on the size of the Hessian set")
        if int(counts[0]) != num_total:
            raise ValueError(
                f"rank {self.rank}: the shards hold {int(counts[0])} examples in all, the set {num_total}: "
                "every rank must take its shard of the same set for the same world size"
            )

    def all_reduce(self, t: torch.Tensor, what: str, op: dist.ReduceOp.RedOpType | None = None) -> None:
        """In-place all_reduce of `t` (default op SUM); a failed collective becomes a one-line `RankFailure`."""
        try:
            dist.all_reduce(t, op=dist.ReduceOp.SUM if op is None else op, group=self.group)
        except RuntimeError as exc:
            raise collective_failure(self.rank, self.world_size, what, exc) from exc

    def check_identical(self, t: torch.Tensor, what: str) -> None:
        """Raise `RanksDiverged` on every rank unless `t` has the same bits on all ranks (one small
        all_reduce of its checksums, MAX of c and of ~c, i.e. of the max and the min)."""
        start = time.perf_counter()
        c = bit_checksum(t)
        both = torch.cat([c, ~c])
        self.all_reduce(both, what, op=dist.ReduceOp.MAX)
        self._check_s += time.perf_counter() - start
        if not torch.equal(both[:2], ~both[2:]):
            raise RanksDiverged(
                f"rank {self.rank} of {self.world_size}: the ranks hold different {what}s, so their solvers "
                "no longer take the same steps (mixed torch builds or CPU kernels that round differently); "
                "run every rank on the same hardware type and software"
            )

    def sum(
        self,
        compute: Callable[[], torch.Tensor],
        shape: Sequence[int],
        dtype: torch.dtype,
        device: torch.device,
        what: str,
    ) -> torch.Tensor:
        """Σ_r share_r · compute_r() over the ranks, as a tensor of `shape`, bit-identical on every rank.

        An exception in `compute` on some rank is raised there after the reduction; the other ranks raise
        `RankFailure` naming how many ranks failed, so no rank is left waiting in a collective."""
        numel = int(torch.Size(shape).numel())
        buf = torch.zeros(numel + 1, dtype=dtype, device=device)
        error: Exception | None = None
        start = time.perf_counter()
        try:
            torch.mul(compute().reshape(-1), self.share, out=buf[:numel])
        except Exception as exc:  # joined below, so that the other ranks do not wait forever
            error = exc
            buf.zero_()
            buf[numel] = 1
        if buf.is_cuda:  # kernels run asynchronously: wait, so that compute and reduce are timed apart
            torch.cuda.synchronize(buf.device)
        mid = time.perf_counter()
        self.all_reduce(buf, what)
        failed = int(buf[numel])
        self._compute_s += mid - start
        self._reduce_s += time.perf_counter() - mid
        self._calls += 1
        if error is not None:
            raise error
        if failed:
            raise RankFailure(
                f"rank {self.rank} of {self.world_size}: {failed} other rank(s) failed computing their share "
                f"of a {what}; their own error says why"
            )
        return buf[:numel].reshape(tuple(shape))

    def timings(self) -> ReduceTimings:
        return ReduceTimings(self._compute_s, self._reduce_s, self._check_s, self._calls)


class DistributedOperator(CurvatureOperator):
    """The operator of the whole Hessian set from this rank's `local` operator over its shard.

    Product: Σ_r share_r · local_r·V by one all_reduce, then `correction(V)` when given (computed on every
    rank from identical inputs), e.g. the covariance C = M − ḡḡᵀ from a distributed second moment M with
    correction = lambda V: -g[:, None] * (g @ V), g the all-reduced mean gradient. check_inputs: compare
    every product's input block across ranks first (see the module docstring); off only for benchmarks.

    `local` must have `mean_over_examples`; its own product check (finiteness) is bypassed so that a
    non-finite share reaches every rank through the sum and all ranks raise NonFiniteCurvature together.
    """

    def __init__(
        self,
        local: CurvatureOperator,
        reducer: ShardReducer,
        *,
        correction: Callable[[torch.Tensor], torch.Tensor] | None = None,
        check_inputs: bool = True,
    ) -> None:
        if not local.mean_over_examples:
            raise TypeError(
                f"{type(local).__name__} is not a mean over the examples of its set, so its shards do not add "
                "up to it; distribute its parts instead (e.g. a covariance as a second moment plus correction)"
            )
        super().__init__(local.layout, local.dtype, local.device, local.mode)
        self.local = local
        self.reducer = reducer
        self.correction = correction
        self.check_inputs = check_inputs

    def _matmat(self, V: torch.Tensor) -> torch.Tensor:
        if self.check_inputs:
            self.reducer.check_identical(V, "product input")
        out = self.reducer.sum(
            lambda: self.local._matmat(V), V.shape, self.dtype, self.device, "curvature product"
        )
        return out if self.correction is None else out + self.correction(V)

    def timings(self) -> ReduceTimings:
        return self.reducer.timings()


class DistributedRisk:
    """The mean loss over the whole Hessian set and its gradient, from this rank's `local` risk over its
    shard: the same objective the distributed operators differentiate (weight decay included once)."""

    def __init__(self, local: EmpiricalRisk, reducer: ShardReducer) -> None:
        self.local = local
        self.reducer = reducer

    @property
    def layout(self) -> ParamLayout:
        return self.local.layout

    @property
    def size(self) -> int:
        return self.local.size

    def flat_params(self) -> torch.Tensor:
        """θ as a flat (P,) vector (the same on every rank: the model is)."""
        return self.local.flat_params()

    def loss_and_gradient(self) -> LossGradient:
        """Mean loss (float) and flat gradient (P,) over the whole set; reduced in float64."""

        def share() -> torch.Tensor:
            lg = self.local.loss_and_gradient()
            loss = torch.tensor([lg.loss], dtype=torch.float64, device=lg.gradient.device)
            return torch.cat([lg.gradient.to(torch.float64), loss])

        out = self.reducer.sum(share, (self.size + 1,), torch.float64, self.local.device, "loss and gradient")
        return LossGradient(loss=float(out[-1]), gradient=out[:-1].to(self.local.dtype))


def _check_batches(shard: Shard, mode: HessianMode | None, batch_size: int | None) -> None:
    """Batch norm in train mode normalizes with each batch's statistics, so the shards must cut the set
    where the single-process pass cuts its batches."""
    if mode is None or mode.batchnorm != "train" or shard.world_size == 1:
        return
    if batch_size is None or shard.start % batch_size != 0:
        raise ValueError(
            "batchnorm=train uses each batch's statistics: distributed products equal the single-process "
            "ones only for shards of whole batches; set a batch size and shard with it "
            "(shard_hessian_set(..., batch_size=...))"
        )


def distributed_curvature_operator(
    model: nn.Module,
    shard: Shard,
    *,
    group: dist.ProcessGroup | None = None,
    curvature: Curvature = "hessian",
    loss_fn: LossFn | None = None,
    batch_size: int | None = None,
    params: Sequence[str] | None = None,
    mode: HessianMode | None = None,
    dtype: torch.dtype | None = None,
    backend: HvpBackend = "auto",
    check_inputs: bool = True,
) -> DistributedOperator:
    """The Hessian or GGN of the mean loss over the whole set, from this rank's `shard` (same arguments
    as `curvature_operator`). Collective: every rank of `group` calls it, in the same order as its other
    collectives."""
    _check_batches(shard, mode, batch_size)
    local = curvature_operator(
        model,
        shard.hessian_set.x,
        shard.hessian_set.y,
        curvature=curvature,
        loss_fn=loss_fn,
        batch_size=batch_size,
        params=params,
        mode=mode,
        dtype=dtype,
        backend=backend,
    )
    reducer = ShardReducer(shard.size, shard.total, group)
    return DistributedOperator(local, reducer, check_inputs=check_inputs)


def distributed_risk(
    model: nn.Module,
    shard: Shard,
    *,
    group: dist.ProcessGroup | None = None,
    loss_fn: LossFn | None = None,
    batch_size: int | None = None,
    params: Sequence[str] | None = None,
    mode: HessianMode | None = None,
    dtype: torch.dtype | None = None,
) -> DistributedRisk:
    """Loss and gradient of the whole set from this rank's `shard` (arguments as `EmpiricalRisk`)."""
    _check_batches(shard, mode, batch_size)
    local = EmpiricalRisk(
        model,
        shard.hessian_set.x,
        shard.hessian_set.y,
        loss_fn=loss_fn,
        batch_size=batch_size,
        params=params,
        mode=mode,
        dtype=dtype,
    )
    return DistributedRisk(local, ShardReducer(shard.size, shard.total, group))
