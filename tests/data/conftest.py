"""Writers for tiny dataset files in the real release formats, and an isolated data environment."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

IDX_BASES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


@pytest.fixture(autouse=True)
def isolated_data_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test reads $HESSDYN_DATA or writes into the real user cache: the cache is tmp_path/cache."""
    monkeypatch.delenv("HESSDYN_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def idx_bytes(array: np.ndarray) -> bytes:
    """An idx file: magic 0x08 (ubyte) + ndim, big-endian int32 dims, then the raw bytes."""
    magic = {3: 2051, 1: 2049}[array.ndim]
    return struct.pack(f">i{array.ndim}i", magic, *array.shape) + array.astype(np.uint8).tobytes()


def write_idx_set(folder: Path, n_train: int = 40, n_test: int = 20, gz: bool = True, seed: int = 0) -> dict:
    """Write the four MNIST-style files (``.gz`` or uncompressed) with random 28x28 images and balanced
    labels; returns the arrays keyed by base name."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8)[rng.permutation(n_train)],
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(n_test) % 10).astype(np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for base, array in arrays.items():
        data = idx_bytes(array)
        if gz:
            (folder / f"{base}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / base).write_bytes(data)
    return arrays


def write_cifar(
    folder: Path, hundred: bool = False, per_file: int = 6, bytes_keys: bool = True, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Write a tiny CIFAR-10 (``data_batch_1..5``, ``test_batch``, ``batches.meta``) or CIFAR-100
    (``train``, ``test``, ``meta``) in the release pickle format; returns train/test images (N, 3, 32, 32)
    and labels in file order."""
    rng = np.random.default_rng(seed)
    key = (lambda k: k.encode()) if bytes_keys else (lambda k: k)
    folder.mkdir(parents=True, exist_ok=True)
    classes = 100 if hundred else 10
    label_key = "fine_labels" if hundred else "labels"
    train_files = ["train"] if hundred else [f"data_batch_{i}" for i in range(1, 6)]
    test_files = ["test"] if hundred else ["test_batch"]
    out = []
    for names, n in ((train_files, per_file * (5 if hundred else 1)), (test_files, per_file)):
        images, labels = [], []
        for name in names:
            data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
            lab = [int(v) for v in rng.integers(0, classes, n)]
            record = {
                key("batch_label"): b"tiny",
                key(label_key): lab,
                key("data"): data,
                key("filenames"): [],
            }
            if hundred:
                record[key("coarse_labels")] = [v // 5 for v in lab]
            with open(folder / name, "wb") as f:
                pickle.dump(record, f, protocol=2)
            images.append(data.reshape(n, 3, 32, 32))
            labels.append(np.asarray(lab))
        out += [np.concatenate(images), np.concatenate(labels)]
    meta_name, names_key = ("meta", "fine_label_names") if hundred else ("batches.meta", "label_names")
    with open(folder / meta_name, "wb") as f:
        pickle.dump({key(names_key): [f"class{i}".encode() for i in range(classes)]}, f, protocol=2)
    return out[0], out[1], out[2], out[3]


@pytest.fixture
def idx_writer():
    return write_idx_set


@pytest.fixture
def cifar_writer():
    return write_cifar
