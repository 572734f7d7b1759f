"""Start the test worker on several CPU processes, as torchrun does or as SLURM starts tasks (no agent)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WORKER = "tests.distributed._worker"


@dataclass(frozen=True)
class RankExit:
    rank: int
    returncode: int | None  # None: still running when the launch gave up on it (then killed)
    stderr: str
    exited_at: float  # seconds since the launch started

    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("error: ")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    return {**env, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **(extra or {})}


def torchrun(
    scenario: str, out_dir: Path, nproc: int = 2, timeout: float = 240
) -> subprocess.CompletedProcess:
    """The worker under `torchrun --standalone` (python -m torch.distributed.run), the launch users type."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    return subprocess.run(
        [*cmd, "-m", WORKER, scenario, str(out_dir)],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def launch_ranks(
    scenario: str,
    out_dir: Path,
    world_size: int = 2,
    *,
    timeout_s: float = 60,
    wait_s: float = 240,
    stop_after_first: bool = False,
) -> list[RankExit]:
    """One process per rank with the env:// variables set; waits up to `wait_s` seconds in all, or, with
    stop_after_first, until rank 0 has exited (the others are then killed). timeout_s is the process
    group's collective timeout."""
    port = str(free_port())
    start = time.monotonic()
    procs = []
    for rank in range(world_size):
        env = _env(
            {
                "RANK": str(rank),
                "WORLD_SIZE": str(world_size),
                "LOCAL_RANK": str(rank),
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": port,
                "HESSDYN_TEST_TIMEOUT_S": str(timeout_s),
            }
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", WORKER, scenario, str(out_dir)],
                cwd=REPO,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    exited: dict[int, float] = {}
    while time.monotonic() - start < wait_s and len(exited) < world_size:
        for rank, proc in enumerate(procs):
            if rank not in exited and proc.poll() is not None:
                exited[rank] = time.monotonic() - start
        if stop_after_first and 0 in exited:
            break
        time.sleep(0.05)
    results = []
    for rank, proc in enumerate(procs):
        if rank not in exited:
            proc.kill()
        _, err = proc.communicate()
        code = proc.returncode if rank in exited else None
        results.append(RankExit(rank, code, err, exited.get(rank, time.monotonic() - start)))
    return results
