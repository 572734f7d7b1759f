"""Compose and validate every job of a command line before Hydra runs anything.

Hydra reports a bad override as several lines (and a bad value only when the job starts, after it has
written ``.hydra/`` into the run directory). Here each job's config is composed with Hydra's own
machinery, converted to the typed schemas (which runs their value checks), and passed to the
command's ``check``; the first problem becomes one line on stderr and nothing is written.
"""

from __future__ import annotations

import itertools
import sys
from typing import Any

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from hessdyn.config import register_configs, register_resolvers, to_object
from hessdyn.config.errors import HessdynError, describe_config_error, unparsable_override

CONFIG_MODULE = "hessdyn.conf"
MAX_CHECKED_JOBS = 512


class PreflightError(HessdynError):
    pass


def expand_jobs(
    overrides: list[str], multirun: bool, sweeper_params: dict[str, Any] | None
) -> list[list[str]]:
    """The override list of every job a command line launches (one job unless ``-m``)."""
    if not multirun:
        return [list(overrides)]
    params = [f"{k}={v}" for k, v in (sweeper_params or {}).items()] + list(overrides)
    parsed = OverridesParser.create().parse_overrides(params)
    per_key: dict[str, list[str]] = {}
    for o in parsed:
        key = o.get_key_element()
        if o.is_sweep_override():
            if not o.is_discrete_sweep():
                raise PreflightError(f"sweep '{key}' is not a discrete list; use a=1,2,3 or range(...)")
            per_key[key] = [f"{key}={v}" for v in o.sweep_string_iterator()]
        else:
            per_key[key] = [f"{key}={o.get_value_element_as_str()}"]
    return [list(job) for job in itertools.product(*per_key.values())]


def _valid_keys(config_name: str, overrides: list[str]) -> dict[str, list[str]]:
    """Keys of every node of the config composed without the failing key overrides (for hints)."""
    safe = [o for o in overrides if "=" in o and "." not in o.split("=", 1)[0].lstrip("+~")]
    try:
        cfg = compose(config_name, overrides=safe)
    except Exception:
        try:
            cfg = compose(config_name)
        except Exception:
            return {}
    out: dict[str, list[str]] = {}

    def walk(node: Any, path: str) -> None:
        if isinstance(node, DictConfig):
            out[path] = [str(k) for k in node.keys()]
            for k in map(str, node.keys()):
                walk(node._get_node(k), f"{path}.{k}" if path else k)

    walk(cfg, "")
    return out


def compose_job(config_name: str, overrides: list[str]) -> DictConfig:
    """Compose one job's config (with its ``hydra`` node) or raise a one-line PreflightError."""
    try:
        return compose(config_name, overrides=overrides, return_hydra_config=True)
    except Exception as exc:  # Hydra raises several exception types for bad overrides
        bad = _first_unparsable(overrides)
        if bad is not None:
            raise PreflightError(unparsable_override(bad)) from exc
        raise PreflightError(describe_config_error(exc, _valid_keys(config_name, overrides))) from exc


def _first_unparsable(overrides: list[str]) -> str | None:
    parser = OverridesParser.create()
    for override in overrides:
        try:
            parser.parse_override(override)
        except Exception:  # noqa: BLE001 - the grammar's lexer and parser errors
            return override
    return None


def validate(cfg: DictConfig) -> Any:
    """Typed object of a composed config; raises PreflightError naming the key on a bad value."""
    try:
        return to_object(cfg)
    except HessdynError:
        raise
    except Exception as exc:
        raise PreflightError(describe_config_error(exc)) from exc


def _check_experiments(jobs: list[list[str]]) -> None:
    """``experiment`` is an optional group (most runs have none), so Hydra silently skips an unknown name and
    runs the defaults instead; refuse it here. Call inside an initialized Hydra context."""
    known = GlobalHydra.instance().config_loader().get_group_options("experiment")
    for job in jobs:
        for override in job:
            key, sep, value = override.partition("=")
            if sep and key.lstrip("+~") == "experiment" and value and value not in ("null", "None"):
                if value not in known:
                    raise PreflightError(
                        f"unknown experiment '{value}' (choose from: {', '.join(sorted(known))})"
                    )


def compose_jobs(config_name: str, overrides: list[str], multirun: bool) -> list[DictConfig]:
    """The composed config (with its ``hydra`` node) of every job a command line launches, validated.

    In a multirun the experiment's ``hydra.sweeper.params`` are expanded together with the command line's
    sweeps, as Hydra's basic sweeper does. Raises PreflightError on the first bad job.
    """
    register_configs()
    register_resolvers()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
            first = compose_job(config_name, overrides if not multirun else _first_values(overrides))
            params = None
            if multirun and first.hydra.sweeper.get("params"):
                params = OmegaConf.to_container(first.hydra.sweeper.params, resolve=False)
            jobs = expand_jobs(overrides, multirun, params)  # type: ignore[arg-type]
            _check_experiments(jobs)
            if len(jobs) > MAX_CHECKED_JOBS:
                raise PreflightError(
                    f"the sweep has {len(jobs)} jobs; split it (at most {MAX_CHECKED_JOBS} per command)"
                )
            configs = []
            for job in jobs:
                cfg = compose_job(config_name, job)
                validate(cfg)
                configs.append(cfg)
    finally:
        GlobalHydra.instance().clear()
    return configs


def check_threads(configs: list[DictConfig], multirun: bool) -> None:
    """``runtime.threads`` against the CPUs each job may use: above them is refused unless
    ``runtime.oversubscribe=true``, and then warned once."""
    from hessdyn.commands.jobs import thread_policy

    warned = False
    for cfg in configs:
        runtime = validate(cfg).runtime
        policy = thread_policy(runtime, cfg.hydra, multirun)
        if policy.note and policy.source == "runtime.threads" and not warned:
            print(f"hessdyn: warning: runtime.threads={policy.threads}: {policy.note}", file=sys.stderr)
            warned = True


def preflight(config_name: str, overrides: list[str], multirun: bool, check: Any | None) -> int:
    """Validate all jobs and run the command's check on each; returns the number of jobs. Raises HessdynError."""
    configs = compose_jobs(config_name, overrides, multirun)
    check_threads(configs, multirun)
    if check is not None:
        for cfg in configs:
            HydraConfig.instance().set_config(cfg)
            check(cfg, multirun)
    return len(configs)


def _first_values(overrides: list[str]) -> list[str]:
    parsed = OverridesParser.create().parse_overrides(overrides)
    out = []
    for o in parsed:
        if o.is_sweep_override() and o.is_discrete_sweep():
            first = next(iter(o.sweep_string_iterator()))
            out.append(f"{o.get_key_element()}={first}")
        elif not o.is_sweep_override():
            out.append(o.input_line or f"{o.get_key_element()}={o.get_value_element_as_str()}")
    return out
