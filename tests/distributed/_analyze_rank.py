"""One rank of `hessdyn analyze` for the tests, watched: `python -m tests.distributed._analyze_rank WATCH OUT
[--die-after PATH] -- ARGS...` runs `hessdyn ARGS` (hessdyn.cli.main, what `python -m hessdyn` runs) with an
audit hook that records every file-system write (open for writing, rename, remove, mkdir, ...) under the
folder WATCH, and writes them to OUT/writes-rank<RANK>.json when the command returns. --die-after PATH:
this process kills itself (SIGKILL, no cleanup) at its first distributed curvature product after the file
PATH exists (e.g. rank 0's record of a checkpoint), as a lost node does.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_PATH_EVENTS = {"os.remove", "os.rmdir", "os.mkdir", "os.truncate", "os.symlink", "os.link", "shutil.rmtree"}


def _writes_to(event: str, args: tuple[Any, ...]) -> list[str]:
    """The paths `event` writes to ([] for reads and other events)."""
    if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
        mode, flags = args[1], args[2]
        writing = any(c in mode for c in "wax+") if isinstance(mode, str) else bool(flags & _WRITE_FLAGS)
        return [os.fsdecode(args[0])] if writing else []
    if event == "os.rename":
        return [os.fsdecode(args[0]), os.fsdecode(args[1])]
    if event in _PATH_EVENTS and args and isinstance(args[0], (str, bytes, os.PathLike)):
        return [os.fsdecode(args[0])]
    return []


def main() -> int:
    watch, out = Path(sys.argv[1]).resolve(), Path(sys.argv[2])
    sep = sys.argv.index("--")
    opts, args = sys.argv[3:sep], sys.argv[sep + 1 :]
    writes: list[str] = []

    def hook(event: str, hook_args: tuple[Any, ...]) -> None:
        for path in _writes_to(event, hook_args):
            full = os.path.abspath(os.path.join(os.getcwd(), path))
            if full == str(watch) or full.startswith(str(watch) + os.sep):
                writes.append(f"{event} {full}")

    if opts[:1] == ["--die-after"]:
        from hessdyn.curvature import distributed

        marker = Path(opts[1])
        product = distributed.DistributedOperator._matmat

        def dying(self: distributed.DistributedOperator, V: Any) -> Any:
            if marker.exists():
                os.kill(os.getpid(), signal.SIGKILL)
            return product(self, V)

        distributed.DistributedOperator._matmat = dying  # type: ignore[method-assign]

    from hessdyn.cli import main as hessdyn_main

    sys.addaudithook(hook)
    try:
        code = hessdyn_main(args)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"writes-rank{os.environ.get('RANK', '0')}.json").write_text(json.dumps(writes))
    return code


if __name__ == "__main__":
    sys.exit(main())
