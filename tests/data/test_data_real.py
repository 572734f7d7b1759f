"""Real MNIST / Fashion-MNIST copies of this machine (../shared/data or $HESSDYN_SHARED_DATA).

A user's clone has no such folder: these tests then skip, saying why (``shared_data`` fixture in
tests/conftest.py). The shared folder is read-only and must stay exactly as it is.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from hessdyn.config import schema as s
from hessdyn.data import load_dataset

CPU = torch.device("cpu")
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def _listing(folder: Path) -> list[tuple[str, int]]:
    return sorted((p.name, p.stat().st_size) for p in folder.iterdir())


def test_real_mnist_from_a_copied_gz_root(shared_data: Path, tmp_path: Path) -> None:
    raw = tmp_path / "root" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for gz in (shared_data / "MNIST" / "raw").glob("*-ubyte.gz"):
        shutil.copy(gz, raw / gz.name)
    data = load_dataset(s.MNISTConfig(root=str(tmp_path / "root"), normalize=False), CPU, torch.float32)
    assert (len(data.train), len(data.test)) == (60000, 10000)
    assert torch.bincount(data.train.y).tolist() == MNIST_TRAIN_COUNTS
    assert torch.bincount(data.test.y).tolist() == MNIST_TEST_COUNTS
    assert data.train.x.double().mean().item() * 255 == pytest.approx(33.318, abs=1e-3)
    assert all(f["official_content"] for f in data.info["files"].values())
    normalized = load_dataset(s.MNISTConfig(root=str(tmp_path / "root"), n_train=5000), CPU, torch.float32)
    x = normalized.train.x.double()
    assert abs(x.mean().item()) < 1e-5 and abs(x.std(correction=0).item() - 1) < 1e-5
    counts = torch.bincount(normalized.train.y)
    assert counts.sum() == 5000 and all(
        abs(c - n / 12) < 1 for c, n in zip(counts.tolist(), MNIST_TRAIN_COUNTS, strict=True)
    )


def test_real_fashion_mnist_from_the_read_only_shared_root(
    shared_data: Path, isolated_data_env: Path
) -> None:
    raw = shared_data / "FashionMNIST" / "raw"
    if not raw.is_dir():
        pytest.skip(f"no Fashion-MNIST copy in {shared_data}")
    before = _listing(raw)
    data = load_dataset(s.FashionMNISTConfig(root=str(shared_data), normalize=False), CPU, torch.float32)
    assert _listing(raw) == before  # regression: nothing decompressed into the read-only folder
    assert (len(data.train), len(data.test)) == (60000, 10000)
    assert torch.bincount(data.train.y).tolist() == [6000] * 10
    assert torch.bincount(data.test.y).tolist() == [1000] * 10
    assert data.train.x.double().mean().item() * 255 == pytest.approx(72.940, abs=1e-2)
    assert Path(data.info["torchvision_root"]).is_relative_to(isolated_data_env)
    assert all(f["official_content"] for f in data.info["files"].values())
