"""digits: the bundled real 8x8 digits, seeded stratified split, subsets, normalization."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from hessdyn.config import schema as s
from hessdyn.data import load_dataset

CPU = torch.device("cpu")


def _load(**kw):
    return load_dataset(s.DigitsConfig(**kw), CPU, torch.float32)


def test_sizes_add_up_and_shapes() -> None:
    data = _load()
    assert (len(data.train), len(data.test)) == (1347, 450)
    assert len(data.train) + len(data.test) == 1797
    assert data.input_shape == (1, 8, 8) and data.num_classes == 10 and data.name == "digits"
    assert data.train.x.shape == (1347, 1, 8, 8) and data.train.y.dtype == torch.int64
    assert data.augment is None


def test_split_is_a_partition_of_the_real_digits() -> None:
    data = _load(normalize=False)
    x = torch.cat([data.train.x, data.test.x]).reshape(-1, 64).double() * 16
    y = torch.cat([data.train.y, data.test.y])
    bunch = load_digits()
    assert x.min() == 0 and x.max() == 16
    # same multiset of (image, label) rows as scikit-learn's data
    ours = sorted(map(tuple, np.column_stack([x.round().numpy(), y.numpy()]).astype(int).tolist()))
    theirs = sorted(map(tuple, np.column_stack([bunch.data, bunch.target]).astype(int).tolist()))
    assert ours == theirs


def test_split_is_deterministic_and_depends_on_split_seed() -> None:
    a, b, c = _load(), _load(), _load(split_seed=1)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.y, b.test.y)
    assert not torch.equal(a.test.y, c.test.y)


def test_split_is_stratified() -> None:
    data = _load(test_fraction=0.3)
    full = np.bincount(load_digits().target)
    test_counts = torch.bincount(data.test.y, minlength=10).numpy()
    assert np.all(np.abs(test_counts - 0.3 * full) <= 1)
    assert len(data.test) == 540 and len(data.train) == 1257


def test_normalization_uses_train_statistics() -> None:
    data = _load()
    x = data.train.x.double()
    assert abs(x.mean().item()) < 1e-6 and abs(x.std(correction=0).item() - 1) < 1e-6
    raw = _load(normalize=False)
    mean, std = data.info["normalization"]["mean"][0], data.info["normalization"]["std"][0]
    assert mean == pytest.approx(raw.train.x.double().mean().item(), rel=1e-6)
    assert torch.allclose(data.test.x, (raw.test.x - mean) / std, atol=1e-5)
    assert abs(data.test.x.double().mean().item()) > 1e-4  # test split is not re-centred on itself


def test_subsets_are_seeded_and_sized() -> None:
    a = _load(n_train=200, n_test=50, subset_seed=4)
    b = _load(n_train=200, n_test=50, subset_seed=4)
    c = _load(n_train=200, n_test=50, subset_seed=5)
    assert (len(a.train), len(a.test)) == (200, 50)
    assert torch.equal(a.train.y, b.train.y) and torch.equal(a.train.x, b.train.x)
    assert not torch.equal(a.train.x, c.train.x)
    assert torch.bincount(a.train.y, minlength=10).min() >= 19
    assert a.info["train_subset_sha1"] == b.info["train_subset_sha1"] != c.info["train_subset_sha1"]


def test_float64_and_device() -> None:
    data = load_dataset(s.DigitsConfig(), torch.device("cpu"), torch.float64)
    assert data.train.x.dtype == torch.float64 and data.train.x.device.type == "cpu"
