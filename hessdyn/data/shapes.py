"""The shape of a dataset from its config alone, without reading files: what a config check needs to size a
model (input shape, classes) and to bound a subset of the training split before anything runs.

The loaders stay the authority: the test suite checks every answer here against :func:`load_dataset`
(digits and synthetic always, MNIST-like files where they exist). For file-backed datasets without an
``n_train`` the training-split size is the official release's (``exact`` False): a user's own files of
another size are checked again when they are loaded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Any

from hessdyn.config.errors import HessdynError

DIGITS_IMAGES = 1797  # scikit-learn's digits
# name -> (input shape, classes, official training-split size)
_FILE_BACKED: dict[str, tuple[tuple[int, ...], int, int]] = {
    "mnist": ((1, 28, 28), 10, 60_000),
    "fashion_mnist": ((1, 28, 28), 10, 60_000),
    "cifar10": ((3, 32, 32), 10, 50_000),
    "cifar100": ((3, 32, 32), 100, 50_000),
}


@dataclass(frozen=True)
class DatasetShape:
    """input_shape: one example, no batch dimension; n_train: examples in the training split as used (after
    any ``n_train`` subset); exact: False where n_train is the official size of files not read yet."""

    input_shape: tuple[int, ...]
    num_classes: int
    n_train: int
    exact: bool


def dataset_shape(cfg: Any) -> DatasetShape:
    """The :class:`DatasetShape` of dataset config ``cfg`` (a ``hessdyn.config.schema`` dataset config)."""
    name = cfg.name.value if isinstance(cfg.name, Enum) else str(cfg.name)
    subset = getattr(cfg, "n_train", None)
    if name == "digits":
        # sklearn's train_test_split puts ceil(test_size · N) examples in the test split
        full = DIGITS_IMAGES - math.ceil(float(cfg.test_fraction) * DIGITS_IMAGES)
        return DatasetShape((1, 8, 8), 10, _subset(subset, full), True)
    if name == "synthetic":
        return DatasetShape((int(cfg.dim),), int(cfg.num_classes), int(cfg.n_train), True)
    if name in _FILE_BACKED:
        shape, classes, official = _FILE_BACKED[name]
        return DatasetShape(shape, classes, _subset(subset, official), subset is not None)
    raise HessdynError(f"unknown dataset '{name}'")


def _subset(n: int | None, full: int) -> int:
    return full if n is None else min(int(n), full)
