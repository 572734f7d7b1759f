"""Analysis settings: the folder they write to, their fingerprint, and which checkpoints they cover."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from hessdyn.config import schema as s

# Settings that change where or how fast results are computed, not the results themselves.
NON_RESULT_SETTINGS = ("name", "device")


def analysis_dir(run_dir: str | Path, name: str) -> Path:
    """``RUN_DIR/analysis`` for the default settings name, ``RUN_DIR/analysis-<name>`` otherwise."""
    return Path(run_dir) / ("analysis" if name == "default" else f"analysis-{name}")


def settings_dict(cfg: s.AnalysisConfig) -> dict[str, Any]:
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True, enum_to_str=True)


def settings_fingerprint(cfg: s.AnalysisConfig | dict[str, Any]) -> str:
    plain = settings_dict(cfg) if not isinstance(cfg, dict) else dict(cfg)
    for key in NON_RESULT_SETTINGS:
        plain.pop(key, None)
    blob = json.dumps(plain, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def changed_settings(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    keys = sorted((set(old) | set(new)) - set(NON_RESULT_SETTINGS))
    return [f"analysis.{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]


def select_checkpoints(steps: list[int], cfg: s.AnalysisConfig) -> list[int]:
    """The checkpoint steps to analyze, in order (first and last always, for every/list selections too)."""
    steps = sorted(steps)
    if not steps:
        return []
    if cfg.checkpoints == s.CheckpointSelection.all:
        return steps
    if cfg.checkpoints == s.CheckpointSelection.every:
        chosen = set(steps[:: cfg.every]) | {steps[0], steps[-1]}
        return sorted(chosen)
    wanted = set(cfg.steps)
    return [x for x in steps if x in wanted]


def metric_on(cfg: s.AnalysisConfig, group: s.MetricGroup) -> bool:
    return group in cfg.metrics or group == s.MetricGroup.spectrum
