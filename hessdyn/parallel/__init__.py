"""Running one analysis over several processes: launch checks, the per-rank context, rank-0 writes.

The numerical side (sharded sets, all-reduced products) lives in `hessdyn.curvature.distributed` and
`hessdyn.curvature.sharding`; this package turns a torchrun / SLURM launch into a `DistributedContext`.
"""

from hessdyn.parallel.context import DistributedContext
from hessdyn.parallel.launch import (
    DEFAULT_TIMEOUT_S,
    LaunchError,
    distributed_session,
    init_distributed,
    launched_distributed,
    shutdown,
)

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "DistributedContext",
    "LaunchError",
    "distributed_session",
    "init_distributed",
    "launched_distributed",
    "shutdown",
]
