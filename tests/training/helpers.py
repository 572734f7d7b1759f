"""Compose typed training configs in-process (no subprocess, no Hydra run)."""

from __future__ import annotations

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

from hessdyn.config import register_configs, register_resolvers, to_object


def typed_config(overrides: list[str], config_name: str = "train"):
    register_configs()
    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_module("hessdyn.conf", version_base="1.3"):
        cfg = compose(config_name, overrides=overrides)
    GlobalHydra.instance().clear()
    return to_object(cfg)
