"""Shards of a Hessian set: contiguous, covering, balanced, batch-aligned, and refused when too many."""

import pytest
import torch

from hessdyn.curvature import select_hessian_set, shard_hessian_set
from hessdyn.curvature.sharding import shard_bounds


def _set(n: int):
    x = torch.arange(n * 2, dtype=torch.float64).reshape(n, 2)
    return select_hessian_set(x, torch.arange(n) % 3, None)


@pytest.mark.parametrize("n,world", [(37, 2), (37, 3), (5, 5), (8, 3), (1, 1)])
def test_shards_tile_the_set_in_order_and_differ_by_at_most_one(n, world):
    hset = _set(n)
    shards = [shard_hessian_set(hset, r, world) for r in range(world)]
    assert torch.equal(torch.cat([s.hessian_set.x for s in shards]), hset.x)
    assert torch.equal(torch.cat([s.hessian_set.indices for s in shards]), hset.indices)
    sizes = [s.size for s in shards]
    assert sum(sizes) == n and max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)
    assert sum(s.share for s in shards) == pytest.approx(1.0, abs=1e-15)
    assert all(s.total == n and s.world_size == world for s in shards)


def test_batch_aligned_shards_hold_whole_batches_of_the_single_process_pass():
    # 37 examples in batches of 5: 8 batches (the last of 2), dealt 3/3/2
    assert shard_bounds(37, 3, unit=5) == ((0, 15), (15, 30), (30, 37))
    shard = shard_hessian_set(_set(37), 1, 3, batch_size=5)
    assert (shard.start, shard.stop, shard.share) == (15, 30, 15 / 37)


def test_more_ranks_than_examples_is_one_line():
    with pytest.raises(ValueError) as err:
        shard_hessian_set(_set(2), 0, 3)
    assert str(err.value) == (
        "world size 3 exceeds the Hessian set's 2 examples: every rank needs at least one; "
        "use at most 2 ranks or a larger Hessian set"
    )
    with pytest.raises(ValueError, match=r"^world size 3 exceeds the Hessian set's 2 batches of 5 examples"):
        shard_bounds(7, 3, unit=5)


def test_rank_outside_the_world_is_refused():
    with pytest.raises(ValueError, match=r"rank must be in \[0, 2\), got 2"):
        shard_hessian_set(_set(4), 2, 2)
