"""A run as the analysis sees it: typed config, data, Hessian set, and models rebuilt at each checkpoint."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hessdyn.config import schema as s
from hessdyn.config.errors import HessdynError
from hessdyn.curvature import HessianSet, select_hessian_set
from hessdyn.data import DatasetSplits, load_dataset
from hessdyn.models import build_model
from hessdyn.parallel import DistributedContext
from hessdyn.store import RunDir, load_checkpoint
from hessdyn.store.integrity import state_dict_problem
from hessdyn.training.run_config import load_run_config


@dataclass
class RunContext:
    run_dir: Path
    config: s.TrainConfig
    record: dict[str, Any]
    data: DatasetSplits
    hessian_set: HessianSet
    device: torch.device
    checkpoints: list[tuple[int, Path]]
    # this process's rank: every curvature product of the analysis is built through it
    dist: DistributedContext = field(default_factory=DistributedContext.single)

    @property
    def train_batch_size(self) -> int:
        """Examples per training step, as the training loop batches them (full batch: the training split)."""
        n_train = len(self.data.train)
        return min(self.config.trainer.batch_size or n_train, n_train)

    def new_model(self, seed: int | None = None) -> nn.Module:
        """The run's architecture in its training dtype on the analysis device (random init when seeded)."""
        if seed is not None:
            torch.manual_seed(seed)
        model = build_model(self.config.model, self.data.input_shape, self.data.num_classes)
        return model.to(device=self.device, dtype=self.data.train.x.dtype)

    def load(self, step: int) -> tuple[nn.Module, dict[str, Any]]:
        """The model at checkpoint ``step`` and the checkpoint dict (optimizer state, lr, ...)."""
        path = dict(self.checkpoints)[step]
        ckpt = load_checkpoint(
            path, map_location=str(self.device), config_hash=self.record.get("config_hash")
        )
        model = self.new_model()
        problem = state_dict_problem(ckpt["model"], model.state_dict())
        if problem is not None:
            raise HessdynError(
                f"{path} does not fit the model of {self.run_dir}/.hydra/config.yaml ({problem}); the run's "
                "config and its checkpoints disagree: restore the run's files from one run"
            )
        model.load_state_dict(ckpt["model"])
        return model, ckpt


def open_run(
    run_dir: str | Path,
    settings: s.AnalysisConfig,
    device: torch.device,
    data_root: str | None = None,
    dist: DistributedContext | None = None,
) -> RunContext:
    """Load everything the analysis of ``run_dir`` needs, or raise a one-line HessdynError."""
    run_dir = Path(run_dir)
    run = RunDir(run_dir)
    record = run.read_record()
    if record is None:
        raise HessdynError(
            f"{run_dir} is not a hessdyn run (no run.json); pass run_dir=<a folder written by hessdyn train>"
        )
    config = load_run_config(run_dir)
    checkpoints = run.checkpoints()
    if not checkpoints:
        raise HessdynError(f"{run_dir} has no checkpoints yet; train it first (hessdyn train ...)")
    dataset_cfg = config.dataset
    if data_root is not None and hasattr(dataset_cfg, "root"):
        dataset_cfg = dataclasses.replace(dataset_cfg, root=data_root)
    dtype = torch.float64 if config.dtype == s.DType.float64 else torch.float32
    data = load_dataset(dataset_cfg, device, dtype)
    expected = record.get("dataset", {}).get("n_train")
    if expected is not None and expected != len(data.train):
        raise HessdynError(
            f"{run_dir} was trained on {expected} examples but the dataset now has {len(data.train)}; "
            "point data_root=... at the data the run used"
        )
    labels = record.get("dataset", {}).get(
        "train_labels_sha1"
    )  # absent in runs written before it was recorded
    if labels is not None and labels != data.info.get("train_labels_sha1"):
        raise HessdynError(
            f"{run_dir} was trained on other training labels than the dataset gives now (digest {labels} != "
            f"{data.info.get('train_labels_sha1')}); point data_root=... at the data the run used"
        )
    hessian_set = select_hessian_set(
        data.train.x, data.train.y, settings.hessian_set, seed=settings.hessian_set_seed
    )
    ctx = dist if dist is not None else DistributedContext.single(device)
    return RunContext(run_dir, config, record, data, hessian_set, device, checkpoints, ctx)
