"""Read a finished (or running) run back: its typed config and its status, from the files it wrote."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from hessdyn.config import changed_keys, config_hash, hashable_config, register_resolvers, to_object
from hessdyn.config import schema as s
from hessdyn.config.errors import HessdynError
from hessdyn.config.store import GROUP_SCHEMAS, OPTIONAL_GROUPS
from hessdyn.store import RunDir


def load_run_config(run_dir: str | Path) -> s.TrainConfig:
    """The typed training config of a run, from its ``.hydra/config.yaml``, checked against the config
    hash its ``run.json`` recorded (the hash its checkpoints carry too).

    Interpolations (e.g. ``out_dir: ${oc.env:...}``) are resolved now; they do not affect results. A file
    that does not parse, or that describes another training config than the run's, is one line naming
    the file, what differs and what to do: a run is never analyzed with another run's optimizer or model.
    """
    run = RunDir(run_dir)
    path = run.hydra_config
    if not path.is_file():
        raise HessdynError(
            f"{run_dir} is not a hessdyn run directory (no .hydra/config.yaml); pass run_dir=<a run>"
        )
    typed = _typed(path)
    record = run.read_record()
    recorded = (record or {}).get("config_hash")
    if recorded is not None and config_hash(typed) != recorded:
        changes = changed_keys(record.get("config", {}), hashable_config(typed))  # type: ignore[union-attr]
        shown = "; ".join(changes[:4]) + (" ..." if len(changes) > 4 else "") or f"hash {recorded}"
        raise HessdynError(
            f"{path} does not describe the config this run was trained with (run.json -> this file: {shown}); "
            "restore it (run.json's 'config' holds the trained values) or analyze the run it belongs to"
        )
    return typed


def _typed(path: Path) -> s.TrainConfig:
    register_resolvers()
    try:
        raw = OmegaConf.load(path)
        if not isinstance(raw, DictConfig):
            raise HessdynError(f"{path} is not a config mapping; restore it or pass run_dir=<a run>")
        typed = OmegaConf.structured(s.TrainConfig)
        for group, options in GROUP_SCHEMAS.items():
            # a run from before the group existed: its default option (what the code did then)
            in_raw = group in raw or group not in OPTIONAL_GROUPS
            name = raw[group]["name"] if in_raw else OPTIONAL_GROUPS[group]
            if name not in options:
                raise HessdynError(f"{path}: unknown {group} '{name}' (choose from: {', '.join(options)})")
            OmegaConf.update(typed, group, OmegaConf.structured(options[name]), merge=False)
        merged = OmegaConf.merge(typed, raw)
        assert isinstance(merged, DictConfig)  # a structured config merged with a mapping
        return to_object(merged)
    except HessdynError:
        raise
    except Exception as exc:  # a file cut or edited by hand: YAML, key or type errors of any kind
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise HessdynError(
            f"{path} is damaged ({first}); restore it from a backup (run.json's 'config' holds the "
            "trained values)"
        ) from exc
