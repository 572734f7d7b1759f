"""Read a finished (or running) run back: its typed config and its status, from the files it wrote."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from hessdyn.config import register_resolvers, to_object
from hessdyn.config import schema as s
from hessdyn.config.errors import HessdynError
from hessdyn.config.store import GROUP_SCHEMAS


def is_run_dir(path: str | Path) -> bool:
    path = Path(path)
    return (path / "run.json").is_file() and (path / ".hydra" / "config.yaml").is_file()


def find_run_dirs(root: str | Path) -> list[Path]:
    """Every run directory at or below ``root`` (a run dir or a sweep dir), sorted."""
    root = Path(root)
    if is_run_dir(root):
        return [root]
    return sorted(p.parent for p in root.rglob("run.json") if is_run_dir(p.parent))


def load_run_config(run_dir: str | Path) -> s.TrainConfig:
    """The typed training config of a run, from its ``.hydra/config.yaml``.

    Interpolations (e.g. ``out_dir: ${oc.env:...}``) are resolved now; they do not affect results.
    """
    path = Path(run_dir) / ".hydra" / "config.yaml"
    if not path.is_file():
        raise HessdynError(
            f"{run_dir} is not a hessdyn run directory (no .hydra/config.yaml); pass run_dir=<a run>"
        )
    register_resolvers()
    raw = OmegaConf.load(path)
    typed = OmegaConf.structured(s.TrainConfig)
    for group, options in GROUP_SCHEMAS.items():
        name = raw[group]["name"]
        if name not in options:
            raise HessdynError(f"{path}: unknown {group} '{name}' (choose from: {', '.join(options)})")
        OmegaConf.update(typed, group, OmegaConf.structured(options[name]), merge=False)
    merged = OmegaConf.merge(typed, raw)
    return to_object(merged)
