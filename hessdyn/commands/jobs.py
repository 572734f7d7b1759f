"""How a Hydra job of any command reports failure.

A single run: a user-facing error (HessdynError) becomes one line on stderr and exit status 1; other
exceptions keep their traceback (they are bugs). In a sweep (``-m``) a failed job is logged and
recorded, and the sweep goes on with the next job.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from hessdyn import threads
from hessdyn.config.errors import HessdynError

log = logging.getLogger("hessdyn")


def in_multirun() -> bool:
    try:
        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:  # no Hydra context (called as a library)
        return False


def run_job(name: str, body: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    multirun = in_multirun()
    try:
        return body()
    except HessdynError as exc:
        if not multirun:
            print(f"hessdyn {name}: error: {exc}", file=sys.stderr)
            raise SystemExit(1) from exc
        log.error("%s job failed: %s; the sweep goes on", name, exc)
        return {"status": "failed", "error": str(exc)}
    except Exception as exc:
        if not multirun:
            raise
        log.exception("%s job failed; the sweep goes on", name)
        return {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}


def launcher_node(hydra_cfg: Any, multirun: bool) -> dict[str, Any] | None:
    """Hydra's ``launcher`` node as a plain dict when it runs this job (a multirun), else None."""
    if not multirun or hydra_cfg is None or "launcher" not in hydra_cfg:
        return None
    node = hydra_cfg.launcher
    plain = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node
    return {str(k): v for k, v in plain.items()} if isinstance(plain, dict) else None


def thread_policy(runtime: Any, hydra_cfg: Any, multirun: bool) -> threads.ThreadPolicy:
    """The thread policy of one job with ``runtime`` settings under the launcher in ``hydra_cfg``."""
    budget = threads.usable_cpus(threads.read_cpu_facts())
    share = threads.launcher_share(launcher_node(hydra_cfg, multirun), budget.cpus)
    return threads.resolve_threads(
        runtime.threads, budget, share, os.environ, oversubscribe=bool(runtime.oversubscribe)
    )


def job_thread_policy(runtime: Any) -> threads.ThreadPolicy:
    """Resolve and apply this Hydra job's thread policy (call at the start of a task, before torch work)."""
    try:
        hydra_cfg = HydraConfig.get()
    except ValueError:  # no Hydra context (called as a library)
        hydra_cfg = None
    policy = thread_policy(runtime, hydra_cfg, in_multirun())
    threads.apply(policy)
    return policy
