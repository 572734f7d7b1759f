"""Configuration: schemas, ConfigStore registration, resolvers, typed conversion and hashing."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from omegaconf import DictConfig, OmegaConf

from hessdyn.config.errors import ConfigValueError, HessdynError
from hessdyn.config.schema import reject_non_finite
from hessdyn.config.store import register_configs

__all__ = [
    "ConfigValueError",
    "HessdynError",
    "changed_keys",
    "config_hash",
    "hashable_config",
    "register_configs",
    "register_resolvers",
    "run_dirname",
    "to_object",
]

# Keys that change where or how visibly a run happens, not what it computes: they may differ
# between a run and its resumption.
NON_RESULT_KEYS: tuple[str, ...] = (
    "device",
    "runtime",
    "name",
    "out_dir",
    "analysis",
    "report",
    "trainer.progress",
    "trainer.eval_batch_size",
    "dataset.root",
    "dataset.download",
)
# Keys added after runs were written, dropped from the hash at the value that means "as before the key
# existed", so those runs keep their hash (they resume and are skipped as finished) while any other value
# makes another run.
NEUTRAL_VALUES: dict[str, object] = {
    "dataset.random_label_fraction": 0.0,
}


# Keys that never name a run folder: the non-result keys, and the experiment (it names the sweep folder
# through its ``name``).
NON_NAMING_KEYS: tuple[str, ...] = (*NON_RESULT_KEYS, "experiment")


def _names_run(key: str) -> bool:
    """Whether an override of ``key`` (``analysis.top_k``, ``+dataset.root``, ``analysis``) is part of a run
    folder's name: only settings that change what training computes are."""
    key = key.lstrip("+~")
    return not any(key == k or key.startswith(f"{k}.") for k in NON_NAMING_KEYS)


def run_dirname(task_overrides: Any) -> str:
    """Folder name of a run from its command-line overrides (Hydra's ``hydra.overrides.task``).

    Hydra's ``override_dirname``, less every override of a key that does not change training
    (:data:`NON_NAMING_KEYS`: ``analysis.*``, ``report.*``, ``device``, ...): a run is named, and trained,
    once whatever it is later analyzed or reported with. ``default`` when nothing names it. A plain string
    (an ``override_dirname`` already) is used as it is.
    """
    if isinstance(task_overrides, str):
        name = task_overrides
    else:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        lines = [str(o) for o in task_overrides]
        parsed = OverridesParser.create().parse_overrides(lines)
        name = ",".join(
            sorted(
                o.input_line or line
                for o, line in zip(parsed, lines, strict=True)
                if _names_run(o.key_or_group)
            )
        )
    name = name.replace("/", "_").replace("\\", "_").strip()
    return name or "default"


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("hessdyn.dirname"):
        OmegaConf.register_new_resolver("hessdyn.dirname", run_dirname)


def to_object(cfg: DictConfig) -> Any:
    """Typed dataclass tree of a composed config; runs every schema's value checks (``__post_init__``).

    Keys forced in with ``+key=value`` that the schema does not know are refused too.
    """
    cfg = cfg.copy()
    if "hydra" in cfg:
        with _writable(cfg):
            del cfg["hydra"]
    _refuse_unknown_keys(cfg, "")
    reject_non_finite(cfg)
    return OmegaConf.to_object(cfg)


def _refuse_unknown_keys(node: Any, path: str) -> None:
    if not isinstance(node, DictConfig):
        return
    object_type = OmegaConf.get_type(node)
    if dataclasses.is_dataclass(object_type):
        known = [f.name for f in dataclasses.fields(object_type)]
        for key in map(str, node.keys()):
            if key not in known:
                where = f"{path}.{key}" if path else key
                raise HessdynError(
                    f"unknown config key '{where}' (valid keys{' of ' + path if path else ''}: {', '.join(known)})"
                )
    for key in map(str, node.keys()):
        _refuse_unknown_keys(node._get_node(key), f"{path}.{key}" if path else key)


class _writable:
    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg

    def __enter__(self) -> None:
        self.struct = OmegaConf.is_struct(self.cfg)
        self.readonly = OmegaConf.is_readonly(self.cfg)
        OmegaConf.set_struct(self.cfg, False)
        OmegaConf.set_readonly(self.cfg, False)

    def __exit__(self, *exc: object) -> None:
        OmegaConf.set_struct(self.cfg, self.struct)
        OmegaConf.set_readonly(self.cfg, self.readonly)


def hashable_config(cfg: Any, exclude: tuple[str, ...] = NON_RESULT_KEYS) -> dict[str, Any]:
    """Resolved plain-dict config without Hydra's node and without the keys in ``exclude``; ``cfg`` is a
    composed DictConfig, a plain dict or a typed config (a schema dataclass)."""
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        cfg = plain_dict(cfg)
    if isinstance(cfg, DictConfig):
        if "hydra" in cfg:  # Hydra's own node may hold runtime-only interpolations: drop it before resolving
            cfg = cfg.copy()
            with _writable(cfg):
                del cfg["hydra"]
        plain = _as_dict(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))
    else:
        plain = json.loads(json.dumps(cfg))
    plain.pop("hydra", None)
    _drop_default_groups(plain)
    _drop_inactive_probe(plain)
    for key in exclude:
        node = plain
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.get(p, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(leaf, None)
    for key, neutral in NEUTRAL_VALUES.items():
        *parents, leaf = key.split(".")
        node = plain
        for p in parents:
            node = node.get(p, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict) and leaf in node and node[leaf] == neutral:
            del node[leaf]
    return plain


def _as_dict(container: Any) -> dict[str, Any]:
    """``OmegaConf.to_container`` of a DictConfig, typed as the dict it is."""
    if not isinstance(container, dict):
        raise TypeError(f"expected a config mapping, got {type(container).__name__}")
    return container


def plain_dict(cfg: Any) -> dict[str, Any]:
    """A typed config (a schema dataclass) as plain, resolved JSON-ready data (enums as their names)."""
    return _as_dict(OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True, enum_to_str=True))


def _drop_default_groups(plain: dict[str, Any]) -> None:
    """Leave out a group added after runs were first written while it holds its default option, so a run
    trained before the group existed keeps its hash (and resumes)."""
    from hessdyn.config.store import OPTIONAL_GROUPS

    for group, default in OPTIONAL_GROUPS.items():
        node = plain.get(group)
        if isinstance(node, dict) and node.get("name") == default:
            plain.pop(group)


def _drop_inactive_probe(plain: dict[str, Any]) -> None:
    """The sharpness probe's settings enter the hash only while it is on: runs without a probe keep the hash
    they had before the probe existed, and a run with one cannot be resumed with other probe settings (its
    metrics/sharpness.csv would change meaning mid-run)."""
    trainer = plain.get("trainer")
    if isinstance(trainer, dict):
        probe = trainer.get("sharpness")
        if isinstance(probe, dict) and probe.get("every") is None:
            trainer.pop("sharpness")


def config_hash(cfg: Any) -> str:
    """Short stable hash of the result-relevant part of a training config (any form :func:`hashable_config`
    takes)."""
    blob = json.dumps(hashable_config(cfg), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def changed_keys(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """``key: old -> new`` of every leaf that differs between two plain config dicts."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(a, dict) and isinstance(b, dict):
            out += changed_keys(a, b, path)
        elif a != b:
            out.append(f"{path}: {a!r} -> {b!r}")
    return out
