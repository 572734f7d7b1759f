"""dataset_shape (input shape, classes, training-split size from the config alone) against the loaders."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hessdyn.config import schema as s
from hessdyn.data import load_dataset
from hessdyn.data.shapes import dataset_shape

CPU = torch.device("cpu")


def _agrees(cfg, exact: bool = True) -> None:
    shape = dataset_shape(cfg)
    data = load_dataset(cfg, CPU, torch.float32)
    assert (shape.input_shape, shape.num_classes) == (data.input_shape, data.num_classes)
    assert shape.exact is exact
    if exact:
        assert shape.n_train == len(data.train)


@pytest.mark.parametrize("test_fraction", [0.25, 0.1, 0.333, 0.5, 0.77])
@pytest.mark.parametrize("n_train", [None, 100])
def test_digits(test_fraction: float, n_train: int | None) -> None:
    _agrees(s.DigitsConfig(test_fraction=test_fraction, n_train=n_train))


@pytest.mark.parametrize("kind", ["gaussian_mixture", "teacher"])
def test_synthetic(kind: str) -> None:
    _agrees(s.SyntheticConfig(kind=s.SyntheticKind(kind), n_train=37, n_test=5, dim=7, num_classes=5))


def test_idx_files_with_and_without_a_subset(tmp_path: Path, idx_writer) -> None:
    idx_writer(tmp_path / "MNIST" / "raw", n_train=40)
    _agrees(s.MNISTConfig(root=str(tmp_path), n_train=30))
    _agrees(s.MNISTConfig(root=str(tmp_path)), exact=False)  # own files of 40: the official 60,000 assumed
    assert dataset_shape(s.MNISTConfig(root=str(tmp_path))).n_train == 60_000


@pytest.mark.parametrize("hundred", [False, True])
def test_cifar(tmp_path: Path, cifar_writer, hundred: bool) -> None:
    folder = "cifar-100-python" if hundred else "cifar-10-batches-py"
    cifar_writer(tmp_path / folder, hundred=hundred)
    cfg = (s.CIFAR100Config if hundred else s.CIFAR10Config)(root=str(tmp_path), n_train=12)
    _agrees(cfg)


def test_real_mnist_training_split_is_the_official_size(shared_data: Path) -> None:
    data = load_dataset(s.MNISTConfig(root=str(shared_data)), CPU, torch.float32)
    assert dataset_shape(s.MNISTConfig(root=str(shared_data))).n_train == len(data.train) == 60_000
