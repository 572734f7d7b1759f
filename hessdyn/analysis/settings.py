"""Analysis settings: their fingerprint, which checkpoints they cover, and whether they are done."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from hessdyn.config import plain_dict
from hessdyn.config import schema as s
from hessdyn.store import RunDir

# Settings that change where or how fast results are computed, not the results themselves.
NON_RESULT_SETTINGS = ("name", "device", "distributed")
# Settings that only a metric group reads: they enter the fingerprint only while that group is on, so adding
# a group (and its settings) leaves the fingerprint of every analysis without it unchanged.
GROUP_SETTINGS: dict[str, tuple[str, ...]] = {
    "noise": ("noise_top_k", "noise_diagonal", "noise_exact_params", "noise_probes"),
}


def _result_settings(plain: dict[str, Any]) -> dict[str, Any]:
    """The settings that decide the results: without NON_RESULT_SETTINGS and the settings of groups that are off."""
    out = {k: v for k, v in plain.items() if k not in NON_RESULT_SETTINGS}
    metrics = {getattr(m, "value", m) for m in out.get("metrics", [])}
    for group, keys in GROUP_SETTINGS.items():
        if group not in metrics:
            for key in keys:
                out.pop(key, None)
    return out


def settings_dict(cfg: s.AnalysisConfig) -> dict[str, Any]:
    return plain_dict(cfg)


def settings_fingerprint(cfg: s.AnalysisConfig | dict[str, Any]) -> str:
    plain = _result_settings(settings_dict(cfg) if not isinstance(cfg, dict) else dict(cfg))
    blob = json.dumps(plain, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def changed_settings(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    old, new = _result_settings(old), _result_settings(new)
    keys = sorted(set(old) | set(new))
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


def analysis_complete(run: RunDir, settings: s.AnalysisConfig) -> bool:
    """The analysis of ``run`` with ``settings`` has nothing left to do (same settings, same checkpoints,
    every one done): the one rule ``hessdyn analyze`` and ``hessdyn run`` skip by."""
    steps = select_checkpoints(run.checkpoint_steps(), settings)
    return run.analysis(settings.name).is_complete(settings_fingerprint(settings), steps)
