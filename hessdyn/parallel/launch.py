"""From a distributed launch (torchrun, or SLURM tasks through submitit) to a `DistributedContext`.

Two process groups: the default group always uses gloo (CPU tensors: the launch checks, and objects
rank 0 broadcasts), and the data group that carries the curvature products uses the backend of the device,
gloo on the CPU and NCCL on CUDA. The launch reads the env:// variables torchrun sets (RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR, MASTER_PORT); under SLURM, `submitit.helpers.TorchDistributedEnvironment().export()`
sets the same ones, and `slurm_launch_variables` derives them from SLURM's when submitit's hydra launcher
starts several tasks. Before anything runs, the ranks compare their device type, torch version and a draw
of the seeded generator the solvers use, and refuse a mixed launch with one line.
"""

from __future__ import annotations

import os
import random
import socket
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from hessdyn.config.errors import HessdynError
from hessdyn.curvature.distributed import bit_checksum
from hessdyn.parallel.context import DistributedContext

# A rank waits in every product's all_reduce for the slowest rank's share, so the timeout must exceed the
# longest product (minutes for a wide ResNet on a CPU); a dead rank's closed connection fails at once.
DEFAULT_TIMEOUT_S = 1800.0
LAUNCH_VARIABLES = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


class LaunchError(HessdynError):
    """A distributed analysis cannot start: not launched as one, or the ranks do not match (one line)."""


@dataclass(frozen=True)
class RankFingerprint:
    """What must agree across ranks: device type, torch build, and the checksum of a seeded draw."""

    device_type: str
    torch_version: str
    draw: tuple[int, int]
    host: str


def launched_distributed(env: Mapping[str, str] | None = None) -> bool:
    """True when the process was started by a distributed launcher (RANK and WORLD_SIZE are set)."""
    env = os.environ if env is None else env
    return "RANK" in env and "WORLD_SIZE" in env


def slurm_launch_variables(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The env:// variables of a SLURM job step of several tasks (as submitit's hydra launcher starts with
    hydra.launcher.tasks_per_node=N), from SLURM's own: RANK = SLURM_PROCID, WORLD_SIZE = SLURM_NTASKS,
    LOCAL_RANK = SLURM_LOCALID, MASTER_ADDR the job's first node, MASTER_PORT a port in [20000, 60000]
    drawn from the job id (the same on every task, as submitit's TorchDistributedEnvironment picks it).
    Empty when this is not such a step (no SLURM, one task) or the launcher set RANK already (torchrun)."""
    env = os.environ if env is None else env
    if launched_distributed(env) or "SLURM_PROCID" not in env or int(env.get("SLURM_NTASKS", "1")) <= 1:
        return {}
    from submitit.slurm.slurm import _parse_node_list

    nodes = _parse_node_list(env["SLURM_JOB_NODELIST"]) if env.get("SLURM_JOB_NODELIST") else []
    job_id = env.get("SLURM_JOB_ID", "0")
    port = env.get("MASTER_PORT") or str(random.Random(job_id).randint(20000, 60000))
    return {
        "RANK": env["SLURM_PROCID"],
        "WORLD_SIZE": env["SLURM_NTASKS"],
        "LOCAL_RANK": env.get("SLURM_LOCALID", "0"),
        "MASTER_ADDR": env.get("MASTER_ADDR") or (nodes[0] if nodes else "127.0.0.1"),
        "MASTER_PORT": port,
    }


def launch_rank(env: Mapping[str, str] | None = None) -> int:
    """This process's rank in a torchrun or SLURM multi-task launch (0 when not launched as one)."""
    env = os.environ if env is None else env
    if launched_distributed(env):
        return int(env["RANK"])
    return int(slurm_launch_variables(env).get("RANK", "0"))


def launch_world_size(env: Mapping[str, str] | None = None) -> int:
    """The number of processes of a torchrun or SLURM multi-task launch (1 when not launched as one)."""
    env = os.environ if env is None else env
    if launched_distributed(env):
        return int(env["WORLD_SIZE"])
    return int(slurm_launch_variables(env).get("WORLD_SIZE", "1"))


def rank_device(device_type: str, local_rank: int) -> torch.device:
    """This rank's device: the CPU, or CUDA device local_rank mod the visible count (one per rank)."""
    if device_type == "auto":
        device_type = "cuda" if torch.cuda.is_available() else "cpu"
    if device_type == "cpu":
        return torch.device("cpu")
    if device_type != "cuda":
        raise LaunchError(f"device must be auto, cpu or cuda, got {device_type!r}")
    if not torch.cuda.is_available():
        raise LaunchError(
            "device=cuda but this rank sees no CUDA device; use device=cpu or fix the allocation"
        )
    return torch.device("cuda", local_rank % torch.cuda.device_count())


def seeded_draw_checksum() -> tuple[int, int]:
    """Checksum of a Gaussian and a Rademacher draw from `torch.Generator().manual_seed(0)` on the CPU, the
    generator and the calls the solvers make for start vectors and probes."""
    gen = torch.Generator().manual_seed(0)
    gauss = torch.randn(4099, generator=gen, dtype=torch.float64)
    signs = torch.randint(0, 2, (4099,), generator=gen, dtype=torch.int8)
    c = bit_checksum(gauss) + bit_checksum(signs)
    return int(c[0]), int(c[1])


def fingerprint(device: torch.device) -> RankFingerprint:
    return RankFingerprint(device.type, torch.__version__, seeded_draw_checksum(), socket.gethostname())


def _by_value(values: Sequence[object]) -> str:
    groups: dict[str, list[int]] = {}
    for rank, value in enumerate(values):
        groups.setdefault(str(value), []).append(rank)
    return "; ".join(
        f"{value} on rank{'s' if len(ranks) > 1 else ''} {', '.join(map(str, ranks))}"
        for value, ranks in groups.items()
    )


def check_fingerprints(prints: list[RankFingerprint]) -> None:
    """One-line LaunchError unless every rank has the same device type, torch version and seeded draw."""
    devices = [p.device_type for p in prints]
    if len(set(devices)) > 1:
        raise LaunchError(
            f"ranks use different device types ({_by_value(devices)}): give every rank the same device"
        )
    versions = [p.torch_version for p in prints]
    if len(set(versions)) > 1:
        raise LaunchError(
            f"ranks run different torch versions ({_by_value(versions)}): install one build on every node"
        )
    draws = [p.draw for p in prints]
    if len(set(draws)) > 1:
        hosts = [p.host for p in prints]
        raise LaunchError(
            "ranks draw different numbers from the same seeded generator (hosts: "
            f"{_by_value(hosts)}), so their probes would differ: run every rank on the same CPU type and build"
        )


def _launch_variables(env: Mapping[str, str]) -> tuple[int, int, int]:
    if not launched_distributed(env):
        raise LaunchError(
            "a distributed analysis needs a distributed launch (RANK and WORLD_SIZE are not set): start it "
            "with torchrun --nproc_per_node=N -m hessdyn analyze ..., or as SLURM tasks through submitit"
        )
    missing = [k for k in LAUNCH_VARIABLES if k not in env]
    if missing:
        raise LaunchError(
            f"the distributed launch set RANK but not {', '.join(missing)}: use torchrun or submitit"
        )
    rank, world_size = int(env["RANK"]), int(env["WORLD_SIZE"])
    if not 0 <= rank < world_size:
        raise LaunchError(f"RANK={rank} is outside [0, WORLD_SIZE={world_size})")
    return rank, world_size, int(env.get("LOCAL_RANK", rank))


def init_distributed(device: str = "auto", *, timeout_s: float = DEFAULT_TIMEOUT_S) -> DistributedContext:
    """Join the launch's process groups (env:// variables in os.environ) and check that the ranks match;
    see the module docstring.

    device: "auto" (CUDA when visible, else the CPU), "cpu" or "cuda". timeout_s: how long a collective
    waits for the other ranks before it fails (see DEFAULT_TIMEOUT_S). Collective: every rank calls it.
    """
    os.environ.update(slurm_launch_variables())  # SLURM tasks through submitit: torchrun's variables
    rank, world_size, local_rank = _launch_variables(os.environ)
    dev = rank_device(str(getattr(device, "value", device)), local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
        # float32 products in TF32 keep ~3 digits: too few for ranks (and one process) to agree
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    timeout = timedelta(seconds=timeout_s)
    # hessdyn owns its groups: it checks them when it starts them and leaves them at the end
    if dist.is_initialized():
        raise LaunchError(
            "torch.distributed is initialized already: leave the process group (shutdown) before starting another"
        )
    dist.init_process_group("gloo", init_method="env://", rank=rank, world_size=world_size, timeout=timeout)
    try:
        prints: list[RankFingerprint | None] = [None] * world_size
        dist.all_gather_object(prints, fingerprint(dev))
        check_fingerprints([p for p in prints if p is not None])
        group: dist.ProcessGroup | None = None
        if dev.type == "cuda":
            if not dist.is_nccl_available():
                raise LaunchError("device=cuda needs NCCL, which this torch build lacks; use device=cpu")
            nccl = dist.new_group(backend="nccl", timeout=timeout)
            if not isinstance(nccl, dist.ProcessGroup):  # every rank is a member, so this cannot happen
                raise LaunchError(f"rank {rank} was left out of the NCCL group; relaunch all ranks")
            group = nccl
    except BaseException:
        dist.destroy_process_group()
        raise
    backend = "nccl" if dev.type == "cuda" else "gloo"
    return DistributedContext(rank, world_size, local_rank, dev, backend, group, timeout_s, True)


def shutdown(ctx: DistributedContext) -> None:
    """Leave the process groups (a no-op for a single-process context)."""
    if ctx.launched and dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def distributed_session(
    device: str = "auto", *, timeout_s: float = DEFAULT_TIMEOUT_S
) -> Iterator[DistributedContext]:
    """`init_distributed` for the duration of a with-block; the groups are left however the block ends."""
    ctx = init_distributed(device, timeout_s=timeout_s)
    try:
        yield ctx
    finally:
        shutdown(ctx)
