"""Register the schemas with Hydra's ConfigStore.

Each YAML option in ``conf/<group>/`` lists ``/schema/<group>/<name>@_here_`` first in its defaults,
so Hydra validates it against the dataclass (unknown keys and wrong types fail at composition).
"""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from hessdyn.config import schema as s

GROUP_SCHEMAS: dict[str, dict[str, type]] = {
    "model": {"mlp": s.MLPConfig, "three_layer": s.ThreeLayerConfig, "wide_resnet": s.WideResNetConfig},
    "dataset": {
        "digits": s.DigitsConfig,
        "synthetic": s.SyntheticConfig,
        "mnist": s.MNISTConfig,
        "fashion_mnist": s.FashionMNISTConfig,
        "cifar10": s.CIFAR10Config,
        "cifar100": s.CIFAR100Config,
    },
    "optimizer": {
        "sgd": s.SGDConfig,
        "momentum": s.MomentumConfig,
        "adam": s.AdamConfig,
        "adamw": s.AdamWConfig,
        "rmsprop": s.RMSpropConfig,
        "sam": s.SAMConfig,
    },
    "schedule": {
        "constant": s.ConstantScheduleConfig,
        "cosine": s.CosineScheduleConfig,
        "step": s.StepScheduleConfig,
    },
    "regularizer": {"none": s.NoRegularizerConfig, "hsr": s.HSRConfig},
}

# Groups added after runs were first written: a run config without them means the default option
# (``none``), which behaves exactly as the code did before the group existed.
OPTIONAL_GROUPS: dict[str, str] = {"regularizer": "none"}

PRIMARY_SCHEMAS: dict[str, type] = {
    "train_schema": s.TrainConfig,
    "analyze_schema": s.AnalyzeConfig,
    "report_schema": s.ReportCommandConfig,
}

_registered = False


def register_configs() -> None:
    """Idempotently store every schema (safe to call from each command and from Hydra's workers)."""
    global _registered
    if _registered:
        return
    cs = ConfigStore.instance()
    for name, node in PRIMARY_SCHEMAS.items():
        cs.store(name=name, node=node)
    for group, options in GROUP_SCHEMAS.items():
        for name, node in options.items():
            cs.store(group=f"schema/{group}", name=name, node=node)
    cs.store(group="schema", name="analysis", node=s.AnalysisConfig)
    cs.store(group="schema", name="report", node=s.ReportConfig)
    _registered = True
