"""Settings of the runs and analyses behind a report: what was held fixed and what varied."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hessdyn.report.runs import RunInfo, format_value

# Run-specific bookkeeping in analysis.json that is not a setting (per-checkpoint records, timings).
_SKIPPED_ANALYSIS_KEYS = (
    "checkpoints",
    "timings",
    "hvps",
    "wall_s",
    "status",
    "started",
    "updated",
    "finished",
)


@dataclass(frozen=True)
class Settings:
    """Flattened ``key -> text`` settings over several runs."""

    varied: dict[str, list[str]]  # key -> the distinct values, in run order
    constant: dict[str, str]  # key -> the one value every run has


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys of nested dicts; lists of dicts (per-item records) are left out."""
    out: dict[str, Any] = {}
    if isinstance(node, Mapping):
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, Mapping):
                out.update(flatten(value, path))
            elif isinstance(value, list) and any(isinstance(v, (Mapping, list)) for v in value):
                continue
            else:
                out[path] = value
    return out


def compare(configs: Iterable[Mapping[str, Any]]) -> Settings:
    """Split flattened configs into keys with one value everywhere and keys that differ (or are missing)."""
    configs = list(configs)
    keys = sorted({k for c in configs for k in c})
    varied, constant = {}, {}
    for key in keys:
        values = [format_value(c[key]) if key in c else "(absent)" for c in configs]
        distinct = list(dict.fromkeys(values))
        if len(distinct) == 1:
            constant[key] = distinct[0]
        else:
            varied[key] = distinct
    return Settings(varied, constant)


def run_settings(runs: list[RunInfo]) -> Settings:
    """Training settings (``run.json`` config over ``.hydra/config.yaml``) of every run, compared."""
    return compare(r.config for r in runs)


ENVIRONMENT_KEYS = (
    "git_commit",
    "versions",
    "device",
    "dtype",
    "num_parameters",
    "dataset",
    "batch_size",
    "steps_per_epoch",
)


def environment_settings(runs: list[RunInfo]) -> Settings:
    """Code version, library versions, device and data of every run (from ``run.json``), compared."""
    return compare(
        flatten({k: r.record[k] for k in ENVIRONMENT_KEYS if k in r.record}) for r in runs if r.record
    )


def analysis_settings(analysis_json: Mapping[str, Mapping[str, Any]]) -> Settings:
    """Settings recorded in each analyzed run's ``analysis.json`` (Hessian mode, solver, k, ...), compared."""
    flat = []
    for record in analysis_json.values():
        entries = flatten(record)
        flat.append(
            {
                k: v
                for k, v in entries.items()
                if not any(part in _SKIPPED_ANALYSIS_KEYS for part in k.split("."))
            }
        )
    return compare(flat)
