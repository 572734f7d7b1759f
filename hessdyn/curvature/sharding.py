"""Split a Hessian set into contiguous per-rank shards for data-parallel curvature products."""

from __future__ import annotations

from dataclasses import dataclass

from hessdyn.curvature.risk import HessianSet


@dataclass(frozen=True)
class Shard:
    """Rank `rank`'s slice [start, stop) of a Hessian set of `total` examples (its examples in set order).

    `share` = (stop − start) / total is the weight of this rank's mean-loss curvature in the mean over the
    whole set: Σ_r share_r · A_r = A for every operator with `mean_over_examples`.
    """

    hessian_set: HessianSet
    rank: int
    world_size: int
    start: int
    stop: int
    total: int

    @property
    def size(self) -> int:
        return self.stop - self.start

    @property
    def share(self) -> float:
        return self.size / self.total


def shard_bounds(total: int, world_size: int, unit: int = 1) -> tuple[tuple[int, int], ...]:
    """(start, stop) of each rank's slice of `total` examples cut into whole units of `unit` examples (the
    last unit may be short), the units dealt as evenly as possible: the first (units mod world_size) ranks
    get one unit more. Raises ValueError (one line) when there are fewer units than ranks."""
    if world_size < 1:
        raise ValueError(f"world size must be >= 1, got {world_size}")
    if unit < 1:
        raise ValueError(f"shard unit must be >= 1 example, got {unit}")
    units = -(-total // unit)
    if world_size > units:
        what = f"{total} examples" if unit == 1 else f"{units} batches of {unit} examples"
        raise ValueError(
            f"world size {world_size} exceeds the Hessian set's {what}: every rank needs at least one; "
            f"use at most {units} ranks or a larger Hessian set"
        )
    base, extra = divmod(units, world_size)
    bounds, start = [], 0
    for r in range(world_size):
        stop = min(total, start + (base + (1 if r < extra else 0)) * unit)
        bounds.append((start, stop))
        start = stop
    return tuple(bounds)


def shard_hessian_set(
    hset: HessianSet, rank: int, world_size: int, *, batch_size: int | None = None
) -> Shard:
    """Rank `rank`'s contiguous shard of `hset` for `world_size` ranks.

    batch_size: the batch size of the curvature pass. When given, shards hold whole batches of the
    single-process pass (the last batch may be short), so batch-dependent objectives (batch norm in train
    mode) equal the single-process ones; when None, shards are cut at single examples.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
    total = int(hset.y.shape[0])
    start, stop = shard_bounds(total, world_size, 1 if batch_size is None else batch_size)[rank]
    part = HessianSet(x=hset.x[start:stop], y=hset.y[start:stop], indices=hset.indices[start:stop])
    return Shard(part, rank, world_size, start, stop, total)
