"""``hessdyn <command> [hydra overrides]``: the one entry point.

Each command is a Hydra app (``--help``, ``--cfg job``, ``-m`` work as in any Hydra app). Before
Hydra runs, every job's config is composed and validated (see :mod:`hessdyn.commands.preflight`), so
bad input costs one clear line and writes nothing.
"""

from __future__ import annotations

import os
import signal
import sys
import warnings
from collections.abc import Sequence

from hessdyn import __version__, threads
from hessdyn.commands import COMMANDS, Command
from hessdyn.config.errors import HessdynError, interrupt_signal

# Hydra flags after which no job runs: their output is Hydra's own, so no preflight is needed.
_INFO_FLAGS = {"--help", "-h", "--hydra-help", "--info", "-i", "--shell-completion", "-sc", "--version"}


def _usage() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = [
        "usage: hessdyn <command> [hydra overrides] [-m] [--cfg job] [--help]",
        "",
        "Compare optimizers through the geometry of the loss.",
        "",
        "commands:",
        *(f"  {c.name:<{width}}  {c.summary}" for c in COMMANDS.values()),
        "",
        "`hessdyn <command> --help` shows a command's config groups and defaults.",
        "examples:",
        "  hessdyn train optimizer=adam optimizer.lr=1e-3 seed=1",
        "  hessdyn train -m optimizer=sgd,adam seed=0,1,2",
    ]
    return "\n".join(lines)


# Keys whose values are file-system paths. Run folders are named after their overrides
# (results/quickstart/optimizer=adam,seed=1), which Hydra's override grammar cannot read unquoted; such a
# value is quoted here so that a path pasted from `ls` just works.
PATH_KEYS = frozenset(
    {
        "run_dir",
        "sweep_dir",
        "out",
        "out_dir",
        "data_root",
        "dataset.root",
        "hydra.run.dir",
        "hydra.sweep.dir",
    }
)


def quote_path_overrides(args: Sequence[str]) -> list[str]:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    out = []
    for arg in args:
        key, sep, value = arg.partition("=")
        if sep and key.lstrip("+~") in PATH_KEYS and value and value[0] not in "'\"[":
            try:
                parser.parse_override(arg)
            except Exception:
                escaped = value.replace("\\", "\\\\").replace("'", "\\'")
                arg = f"{key}='{escaped}'"
        out.append(arg)
    return out


def error(message: str, code: int = 2) -> int:
    print(f"hessdyn: error: {message}", file=sys.stderr)
    return code


def run_command(command: Command, argv: Sequence[str]) -> int:
    """Preflight, then hand the command line to Hydra."""
    import hydra
    from hydra._internal.utils import get_args_parser

    from hessdyn.commands.preflight import preflight
    from hessdyn.config import register_configs, register_resolvers

    args = quote_path_overrides(argv)
    try:
        parsed = get_args_parser().parse_args(args)
    except SystemExit as exc:  # argparse already printed its usage line
        return int(exc.code or 2)
    if parsed.multirun and parsed.cfg:
        return error("-m and --cfg cannot be combined (Hydra shows one job's config); drop -m")
    info_only = any(a in _INFO_FLAGS for a in args)
    if not info_only and parsed.experimental_rerun is None:
        if parsed.config_dir or parsed.config_path or parsed.config_name:
            return error(
                "--config-dir/--config-path/--config-name are not supported; use experiment=NAME overlays"
            )
        try:
            preflight(command.config_name, parsed.overrides, parsed.multirun, command.load_check())
        except HessdynError as exc:
            return error(str(exc))
    register_configs()
    register_resolvers()
    task = command.load_task()
    app = hydra.main(version_base="1.3", config_path="pkg://hessdyn.conf", config_name=command.config_name)(
        task
    )
    saved = sys.argv
    sys.argv = [f"hessdyn {command.name}", *args]
    try:
        app()
    except HessdynError as exc:
        return error(str(exc), code=1)
    except KeyboardInterrupt as exc:
        return interrupted(command.name, exc)
    finally:
        sys.argv = saved
    return 0


def interrupted(command: str, exc: BaseException) -> int:
    """One line for Ctrl-C or SIGTERM; the exit status a shell gives a process stopped by that signal."""
    name = interrupt_signal(exc)
    print(
        f"hessdyn {command}: interrupted by {name}; finished work is kept (a training run is recorded as "
        "interrupted): rerun the same command to continue",
        file=sys.stderr,
    )
    return 128 + int(getattr(signal, name, signal.SIGINT))


def main(argv: Sequence[str] | None = None) -> int:
    # Before anything imports torch or NumPy: OpenMP reads its wait policy when it loads (hessdyn.threads).
    threads.prepare_environment()
    # conf/hydra/launcher/*.yaml set defaults for the launcher plugins under the plugins' own names, which
    # Hydra validates against the plugin's schema of that name (and warns about the matching by name).
    warnings.filterwarnings(
        "ignore", message=r"(?s).*is validated against ConfigStore schema with the same name"
    )
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0 if args else 2
    if args[0] == "--version":
        print(f"hessdyn {__version__}")
        return 0
    name, rest = args[0], args[1:]
    command = COMMANDS.get(name)
    if command is None:
        return error(f"unknown command '{name}' (choose from: {', '.join(COMMANDS)}; see hessdyn --help)")
    os.environ.setdefault("HYDRA_FULL_ERROR", "0")
    if not command.hydra_app:
        try:
            return int(command.load_task()(quote_path_overrides(rest)))
        except HessdynError as exc:
            return error(str(exc))
        except KeyboardInterrupt as exc:
            return interrupted(command.name, exc)
    return run_command(command, rest)


if __name__ == "__main__":
    sys.exit(main())
