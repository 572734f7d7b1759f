"""Datasets as in-memory tensors on the training device.

:func:`load_dataset` turns a dataset config (``DigitsConfig``, ``SyntheticConfig``, ``MNISTConfig``,
``FashionMNISTConfig``, ``CIFAR10Config``, ``CIFAR100Config``) into a :class:`DatasetSplits`; the runner
slices batches from ``splits.train.x`` / ``.y`` itself (much faster than a DataLoader for small nets).

Shared conventions (:func:`hessdyn.data.splits.finalize`):

* inputs are scaled to their natural range first (pixels / 255, digits / 16), then, when
  ``normalize``, standardized with the mean and std of the *training* split as used (after the
  ``n_train`` subset): one mean/std per channel for images ``(C, H, W)``, one scalar for vectors;
  both are recorded in ``info["normalization"]``;
* ``n_train`` / ``n_test`` take stratified subsets seeded by ``subset_seed`` (synthetic data is
  generated at those sizes instead);
* labels are int64, inputs ``dtype``, all on ``device``; ``info`` is JSON-serializable provenance.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

import torch

from hessdyn.config.errors import HessdynError
from hessdyn.data.cifar import CIFAR10, CIFAR100, load_cifar
from hessdyn.data.digits import load_digits
from hessdyn.data.mnist import FASHION_MNIST, MNIST, load_idx_dataset
from hessdyn.data.roots import default_data_root
from hessdyn.data.splits import DatasetSplits, TensorSplit
from hessdyn.data.synthetic import load_synthetic

__all__ = ["DATASET_NAMES", "DatasetSplits", "TensorSplit", "default_data_root", "load_dataset"]

DATASET_NAMES: tuple[str, ...] = ("digits", "synthetic", "mnist", "fashion_mnist", "cifar10", "cifar100")


def load_dataset(cfg: Any, device: torch.device, dtype: torch.dtype) -> DatasetSplits:
    """Load the dataset ``cfg`` describes onto ``device`` as ``dtype`` inputs and int64 labels.

    Raises :class:`HessdynError` (one line: what is missing and where to put it) when files are absent,
    unreadable or cannot be downloaded, or when ``n_train``/``n_test`` exceed the split.
    """
    name = cfg.name.value if isinstance(cfg.name, Enum) else str(cfg.name)
    device = torch.device(device)
    if not dtype.is_floating_point:
        raise ValueError(f"dtype must be floating point, got {dtype}")
    if name == "digits":
        return load_digits(cfg, device, dtype)
    if name == "synthetic":
        return load_synthetic(cfg, device, dtype)
    if name == "mnist":
        return load_idx_dataset(MNIST, cfg, device, dtype)
    if name == "fashion_mnist":
        return load_idx_dataset(FASHION_MNIST, cfg, device, dtype)
    if name == "cifar10":
        return load_cifar(CIFAR10, cfg, device, dtype)
    if name == "cifar100":
        return load_cifar(CIFAR100, cfg, device, dtype)
    raise HessdynError(f"unknown dataset '{name}' (choose from: {', '.join(DATASET_NAMES)})")
