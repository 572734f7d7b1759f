"""Shared loader steps: containers, stratified subsets, normalization, data roots, atomic writes."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import pytest
import torch

from hessdyn.config import schema as s
from hessdyn.config.errors import HessdynError
from hessdyn.data import DatasetSplits, TensorSplit, default_data_root, load_dataset
from hessdyn.data.roots import gunzip_atomic, is_writable_dir, resolve_root
from hessdyn.data.splits import fit_normalization, stratified_subset


def test_tensor_split_len_and_validation() -> None:
    split = TensorSplit(torch.zeros(5, 3), torch.zeros(5, dtype=torch.int64))
    assert len(split) == 5
    with pytest.raises(ValueError, match="x has 5 rows but y has 4"):
        TensorSplit(torch.zeros(5, 3), torch.zeros(4, dtype=torch.int64))
    with pytest.raises(ValueError, match="y must be a 1-d int64 tensor"):
        TensorSplit(torch.zeros(5, 3), torch.zeros(5, dtype=torch.int32))


def test_containers_are_frozen() -> None:
    split = TensorSplit(torch.zeros(2, 1), torch.zeros(2, dtype=torch.int64))
    data = DatasetSplits("d", split, split, (1,), 2)
    with pytest.raises(AttributeError):
        data.name = "other"  # type: ignore[misc]


def test_stratified_subset_keeps_class_proportions_and_is_seeded() -> None:
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    idx = stratified_subset(labels, 10, seed=0)
    assert idx.tolist() == sorted(set(idx.tolist())) and len(idx) == 10
    assert torch.bincount(labels[idx]).tolist() == [5, 3, 2]
    assert torch.equal(idx, stratified_subset(labels, 10, seed=0))
    assert not torch.equal(idx, stratified_subset(labels, 10, seed=1))
    # largest remainders: 7 * (0.5, 0.3, 0.2) = (3.5, 2.1, 1.4) -> floors (3, 2, 1) + 1 to class 0
    assert torch.bincount(labels[stratified_subset(labels, 7, seed=3)]).tolist() == [4, 2, 1]
    assert stratified_subset(labels, 100, seed=0).tolist() == list(range(100))


def test_fit_normalization_per_channel_and_global() -> None:
    x = torch.stack([torch.full((4, 2, 2), 2.0), torch.arange(16.0).reshape(4, 2, 2)], dim=1)  # (4, 2, 2, 2)
    norm = fit_normalization(x, chunk=3)
    assert norm.mean == (2.0, 7.5)
    assert norm.std[0] == 1.0  # constant channel: centred only
    assert norm.std[1] == pytest.approx(math.sqrt(85 / 4), rel=1e-12)  # variance of 0..15 is (16**2 - 1) / 12
    flat = fit_normalization(torch.tensor([[1.0, 3.0], [5.0, 7.0]]))
    assert flat.mean == (4.0,) and flat.std == pytest.approx((5**0.5,), rel=1e-12)
    out = norm.apply(x)
    assert torch.equal(out[:, 0], torch.zeros(4, 2, 2)) and abs(out[:, 1].mean().item()) < 1e-6
    assert x[0, 1, 0, 1] == 1.0  # apply() leaves its input alone


def test_default_data_root_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("HESSDYN_DATA", raising=False)
    assert default_data_root() == tmp_path / "home" / ".cache" / "hessdyn" / "data"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_data_root() == tmp_path / "xdg" / "hessdyn" / "data"
    monkeypatch.setenv("HESSDYN_DATA", "")
    assert default_data_root() == tmp_path / "xdg" / "hessdyn" / "data"
    monkeypatch.setenv("HESSDYN_DATA", str(tmp_path / "mine"))
    assert default_data_root() == tmp_path / "mine"
    assert resolve_root(None) == tmp_path / "mine"
    assert resolve_root(str(tmp_path / "explicit")) == tmp_path / "explicit"
    monkeypatch.setenv("HOME", str(tmp_path / "h2"))
    assert resolve_root("~/d") == tmp_path / "h2" / "d"


def test_folder_without_write_bits_is_read_only_even_for_root(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    assert is_writable_dir(folder) and is_writable_dir(folder / "not" / "yet")
    folder.chmod(0o555)
    try:
        assert not is_writable_dir(folder) and not is_writable_dir(folder / "sub")
    finally:
        folder.chmod(0o755)


def test_gunzip_atomic_writes_complete_files_only(tmp_path: Path) -> None:
    good = tmp_path / "a.gz"
    good.write_bytes(gzip.compress(b"x" * 10000))
    gunzip_atomic(good, tmp_path / "out" / "a")
    assert (tmp_path / "out" / "a").read_bytes() == b"x" * 10000
    assert (tmp_path / "out" / "a").stat().st_mode & 0o777 == 0o644
    bad = tmp_path / "b.gz"
    bad.write_bytes(gzip.compress(b"y" * 10000)[:-12])
    with pytest.raises(
        HessdynError, match=r"^cannot decompress .*b\.gz \(.*\): replace it with an intact copy$"
    ):
        gunzip_atomic(bad, tmp_path / "out" / "b")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a"]


def test_unknown_dataset_is_a_one_line_error() -> None:
    class Cfg:
        name = "imagenet"

    with pytest.raises(
        HessdynError,
        match=r"^unknown dataset 'imagenet' \(choose from: digits, synthetic, mnist, fashion_mnist, cifar10, cifar100\)$",
    ):
        load_dataset(Cfg(), torch.device("cpu"), torch.float32)


def test_info_is_json_serializable() -> None:
    import json

    data = load_dataset(s.DigitsConfig(n_train=100), torch.device("cpu"), torch.float32)
    text = json.dumps(data.info)
    assert '"train_size": 100' in text and "name" not in data.info
