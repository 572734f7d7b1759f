"""Read a finished (or running) run back: its typed config and its status, from the files it wrote."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from hessdyn.config import register_resolvers, to_object
from hessdyn.config import schema as s
from hessdyn.config.errors import HessdynError
from hessdyn.config.store import GROUP_SCHEMAS, OPTIONAL_GROUPS
from hessdyn.store import RunDir


def load_run_config(run_dir: str | Path) -> s.TrainConfig:
    """The typed training config of a run, from its ``.hydra/config.yaml``.

    Interpolations (e.g. ``out_dir: ${oc.env:...}``) are resolved now; they do not affect results.
    """
    path = RunDir(run_dir).hydra_config
    if not path.is_file():
        raise HessdynError(
            f"{run_dir} is not a hessdyn run directory (no .hydra/config.yaml); pass run_dir=<a run>"
        )
    register_resolvers()
    raw = OmegaConf.load(path)
    if not isinstance(raw, DictConfig):
        raise HessdynError(f"{path} is not a config mapping; pass run_dir=<a run written by hessdyn train>")
    typed = OmegaConf.structured(s.TrainConfig)
    for group, options in GROUP_SCHEMAS.items():
        # a run from before the group existed: its default option (what the code did then)
        name = OPTIONAL_GROUPS[group] if group not in raw and group in OPTIONAL_GROUPS else raw[group]["name"]
        if name not in options:
            raise HessdynError(f"{path}: unknown {group} '{name}' (choose from: {', '.join(options)})")
        OmegaConf.update(typed, group, OmegaConf.structured(options[name]), merge=False)
    merged = OmegaConf.merge(typed, raw)
    assert isinstance(merged, DictConfig)  # a structured config merged with a mapping
    return to_object(merged)
