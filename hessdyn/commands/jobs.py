"""How a Hydra job of any command reports failure.

A single run: a user-facing error (HessdynError) becomes one line on stderr and exit status 1; other
exceptions keep their traceback (they are bugs). In a sweep (``-m``) a failed job is logged and
recorded, and the sweep goes on with the next job.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

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
