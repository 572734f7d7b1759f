"""How a Hydra job of any command reports failure.

A single run: a user-facing error (HessdynError) becomes one line on stderr and exit status 1; other
exceptions keep their traceback (they are bugs). In a sweep (``-m``) a failed job is logged and
recorded, and the sweep goes on with the next job.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from hessdyn import threads
from hessdyn.config.errors import HessdynError, Interrupted

log = logging.getLogger("hessdyn")


def in_multirun() -> bool:
    try:
        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:  # no Hydra context (called as a library)
        return False


def traceback_to_log_files(message: str, exc: BaseException) -> None:
    """Write ``exc``'s traceback to the log files only (the job's ``<command>.log``), not to the terminal,
    where the error is one line."""
    record = logging.LogRecord(
        log.name, logging.ERROR, __file__, 0, message, None, (type(exc), exc, exc.__traceback__)
    )
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def describe_os_error(exc: OSError) -> str:
    """One line for a file-system error: what could not be done where, and what to do."""
    where = exc.filename or "a result file"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return (
            f"no space left on the device writing {where}; free some space and rerun the same command "
            "(every file is written whole or not at all: finished results are intact and kept)"
        )
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return (
            f"cannot write {where} ({exc.strerror}); choose a writable folder (out_dir=..., out=...) or "
            "fix its permissions"
        )
    return f"{exc.strerror or type(exc).__name__}: {where}"


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """While a job runs, SIGTERM (``kill``, a cluster's preemption) stops it the way Ctrl-C does: the job
    records what it finished and that it was interrupted (resumable), instead of dying mid-way."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, _frame: object) -> None:
        raise Interrupted(signal.Signals(signum).name)

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_job(name: str, body: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    multirun = in_multirun()
    try:
        with sigterm_interrupts():
            return body()
    except (HessdynError, OSError) as exc:
        line = describe_os_error(exc) if isinstance(exc, OSError) else str(exc)
        if isinstance(exc, OSError):
            traceback_to_log_files(f"{name} job: {line}", exc)
        if not multirun:
            print(f"hessdyn {name}: error: {line}", file=sys.stderr)
            raise SystemExit(1) from exc
        log.error("%s job failed: %s; the sweep goes on", name, line)
        return {"status": "failed", "error": line}
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
