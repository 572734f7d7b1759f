"""MNIST / Fashion-MNIST from tiny idx files written in the real format, in every accepted layout."""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from hessdyn.config import schema as s
from hessdyn.config.errors import HessdynError
from hessdyn.data import load_dataset
from hessdyn.data import mnist as mnist_module

CPU = torch.device("cpu")
GZ_NAMES = "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz"


def _load(root: Path, cls=s.MNISTConfig, **kw):
    return load_dataset(cls(root=str(root), normalize=False, **kw), CPU, torch.float32)


def _assert_matches(data, arrays: dict) -> None:
    assert data.input_shape == (1, 28, 28) and data.num_classes == 10
    assert len(data.train) == len(arrays["train-labels-idx1-ubyte"]) and len(data.test) == len(
        arrays["t10k-labels-idx1-ubyte"]
    )
    pixels = torch.round(data.train.x * 255).to(torch.uint8).squeeze(1)
    assert torch.equal(pixels, torch.from_numpy(arrays["train-images-idx3-ubyte"]))
    assert torch.equal(data.train.y, torch.from_numpy(arrays["train-labels-idx1-ubyte"]).long())
    assert torch.equal(data.test.y, torch.from_numpy(arrays["t10k-labels-idx1-ubyte"]).long())
    assert data.train.x.dtype == torch.float32 and data.train.y.dtype == torch.int64


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_raw_folder_with_only_gz_files_is_decompressed_in_place(tmp_path: Path, idx_writer) -> None:
    raw = tmp_path / "root" / "MNIST" / "raw"
    arrays = idx_writer(raw)
    data = _load(tmp_path / "root")
    _assert_matches(data, arrays)
    assert _files(raw) == sorted([*(f"{b}.gz" for b in arrays), *arrays])  # no temp files left behind
    assert (raw / "train-labels-idx1-ubyte").read_bytes() == gzip.decompress(
        (raw / "train-labels-idx1-ubyte.gz").read_bytes()
    )
    assert data.info["source"] == str(raw) and data.info["torchvision_root"] == str(tmp_path / "root")
    assert data.info["files"]["train-images-idx3-ubyte"]["official_content"] is False


@pytest.mark.parametrize("where", ["raw", ".", "MNIST"])
@pytest.mark.parametrize("gz", [True, False])
def test_other_root_layouts_are_accepted(
    tmp_path: Path, idx_writer, isolated_data_env: Path, where: str, gz: bool
) -> None:
    root = tmp_path / "root"
    arrays = idx_writer(root / where, gz=gz, seed=3)
    before = _files(root / where)
    data = _load(root)
    _assert_matches(data, arrays)
    assert Path(data.info["source"]) == (root / where).absolute()
    assert _files(root / where) == before and not (root / "MNIST" / "raw").exists()
    staged = Path(data.info["torchvision_root"]) / "MNIST" / "raw"
    assert staged.is_relative_to(isolated_data_env / "hessdyn" / "staged")
    assert _files(staged) == sorted(arrays)
    assert all((staged / b).is_symlink() != gz for b in arrays)  # uncompressed sources are linked, not copied


def test_read_only_root_is_staged_in_the_user_cache(
    tmp_path: Path, idx_writer, isolated_data_env: Path
) -> None:
    root = tmp_path / "ro"
    raw = root / "MNIST" / "raw"
    arrays = idx_writer(raw)
    before = _files(raw)
    for folder in (raw, raw.parent, root):
        folder.chmod(0o555)
    try:
        data = _load(root)
        again = _load(root)
    finally:
        for folder in (root, raw.parent, raw):
            folder.chmod(0o755)
    _assert_matches(data, arrays)
    assert torch.equal(again.train.x, data.train.x)
    assert _files(raw) == before  # regression: running as root must not write into a dr-xr-xr-x folder
    assert Path(data.info["torchvision_root"]).is_relative_to(isolated_data_env / "hessdyn" / "staged")


def test_debian_fashion_mnist_folder_is_used_and_left_untouched(
    tmp_path: Path, idx_writer, monkeypatch: pytest.MonkeyPatch
) -> None:
    debian = tmp_path / "usr" / "share" / "datasets" / "fashion-mnist"
    arrays = idx_writer(debian, seed=5)
    debian.chmod(0o555)
    monkeypatch.setattr(mnist_module, "DEBIAN_FASHION_MNIST", debian)
    root = tmp_path / "root"
    try:
        data = _load(root, s.FashionMNISTConfig)
    finally:
        debian.chmod(0o755)
    _assert_matches(data, arrays)
    assert data.name == "fashion_mnist"
    assert data.info["source"] == str(debian)
    assert _files(debian) == sorted(f"{b}.gz" for b in arrays)
    assert _files(Path(data.info["torchvision_root"]) / "FashionMNIST" / "raw") == sorted(arrays)
    assert not root.exists()
    assert data.info["classes"][0] == "T-shirt/top"


def test_missing_files_name_the_files_and_the_folder(tmp_path: Path) -> None:
    with pytest.raises(HessdynError) as err:
        _load(tmp_path / "empty")
    message = str(err.value)
    assert message == (
        f"MNIST not found: put {GZ_NAMES} in {tmp_path / 'empty' / 'MNIST' / 'raw'}/ "
        "(set dataset.root / $HESSDYN_DATA, or dataset.download=true with network access)"
    )
    assert "\n" not in message


def test_missing_fashion_mentions_debian_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mnist_module, "DEBIAN_FASHION_MNIST", tmp_path / "nowhere")
    with pytest.raises(
        HessdynError,
        match=r"^Fashion-MNIST not found: put train-images-idx3-ubyte\.gz.*/FashionMNIST/raw/ .*dataset-fashion-mnist\)$",
    ):
        _load(tmp_path / "empty", s.FashionMNISTConfig)


def test_default_root_is_used_when_root_is_null(
    tmp_path: Path, idx_writer, monkeypatch: pytest.MonkeyPatch
) -> None:
    arrays = idx_writer(tmp_path / "envroot" / "MNIST" / "raw", seed=9)
    monkeypatch.setenv("HESSDYN_DATA", str(tmp_path / "envroot"))
    data = load_dataset(s.MNISTConfig(normalize=False), CPU, torch.float32)
    _assert_matches(data, arrays)


def test_incomplete_folder_names_the_missing_file(tmp_path: Path, idx_writer) -> None:
    raw = tmp_path / "root" / "MNIST" / "raw"
    idx_writer(raw)
    (raw / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(
        HessdynError, match=r"^MNIST incomplete in .*/MNIST/raw/: missing t10k-labels-idx1-ubyte\.gz"
    ):
        _load(tmp_path / "root")


def test_bad_magic_number_is_a_one_line_error(tmp_path: Path, idx_writer) -> None:
    raw = tmp_path / "root" / "MNIST" / "raw"
    idx_writer(raw, gz=False)
    data = bytearray((raw / "train-labels-idx1-ubyte").read_bytes())
    data[3] = 0x03  # 2049 -> 2051
    (raw / "train-labels-idx1-ubyte").write_bytes(bytes(data))
    with pytest.raises(
        HessdynError, match=r"train-labels-idx1-ubyte is not an idx file with magic number 2049"
    ):
        _load(tmp_path / "root")


def test_truncated_file_is_a_one_line_error(tmp_path: Path, idx_writer) -> None:
    raw = tmp_path / "root" / "MNIST" / "raw"
    idx_writer(raw, gz=False)
    path = raw / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(
        HessdynError,
        match=r"t10k-images-idx3-ubyte is truncated or padded \(15596 bytes, header \(20, 28, 28\) needs 15696\)",
    ):
        _load(tmp_path / "root")


def test_corrupt_gz_is_a_one_line_error_and_leaves_no_temp_file(tmp_path: Path, idx_writer) -> None:
    raw = tmp_path / "root" / "MNIST" / "raw"
    idx_writer(raw)
    gz = raw / "train-images-idx3-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:50])
    with pytest.raises(
        HessdynError,
        match=r"^cannot decompress .*train-images-idx3-ubyte\.gz .*replace it with an intact copy$",
    ):
        _load(tmp_path / "root")
    assert not any(p.name.startswith(".") for p in raw.iterdir())
    assert not (raw / "train-images-idx3-ubyte").exists()


def test_images_and_labels_count_mismatch(tmp_path: Path, idx_writer) -> None:
    raw = tmp_path / "root" / "MNIST" / "raw"
    idx_writer(raw, n_train=40)
    other = idx_writer(tmp_path / "other", n_train=30, gz=True)
    shutil.copy(tmp_path / "other" / "train-labels-idx1-ubyte.gz", raw / "train-labels-idx1-ubyte.gz")
    assert len(other["train-labels-idx1-ubyte"]) == 30
    with pytest.raises(HessdynError, match=r"train images and labels disagree \(40 vs 30 items\)"):
        _load(tmp_path / "root")


def test_failed_download_ends_in_the_same_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", ["http://127.0.0.1:9/"])
    with pytest.raises(HessdynError) as err:
        _load(tmp_path / "root", download=True)
    message = str(err.value)
    assert message.startswith(
        "MNIST download failed (Error downloading train-images-idx3-ubyte.gz: Tried http://127.0.0.1:9/"
    )
    assert message.endswith(
        f"; MNIST not found: put {GZ_NAMES} in {tmp_path / 'root' / 'MNIST' / 'raw'}/ "
        "(set dataset.root / $HESSDYN_DATA, or dataset.download=true with network access)"
    )
    assert "\n" not in message


def test_subsets_are_seeded_stratified_and_normalized(tmp_path: Path, idx_writer) -> None:
    idx_writer(tmp_path / "root" / "MNIST" / "raw", n_train=200, n_test=50)
    cfg = s.MNISTConfig(root=str(tmp_path / "root"), n_train=50, n_test=10, subset_seed=1)
    a = load_dataset(cfg, CPU, torch.float64)
    b = load_dataset(cfg, CPU, torch.float64)
    c = load_dataset(
        s.MNISTConfig(root=str(tmp_path / "root"), n_train=50, n_test=10, subset_seed=2), CPU, torch.float64
    )
    assert len(a.train) == 50 and len(a.test) == 10
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.y, b.test.y)
    assert not torch.equal(a.train.x, c.train.x)
    assert torch.bincount(a.train.y).tolist() == [5] * 10 and torch.bincount(a.test.y).tolist() == [1] * 10
    assert a.train.x.dtype == torch.float64
    assert abs(a.train.x.mean().item()) < 1e-12 and abs(a.train.x.std(correction=0).item() - 1) < 1e-12
    assert a.info["train_size_full"] == 200 and a.info["train_size"] == 50


def test_subset_larger_than_split_is_a_clear_error(tmp_path: Path, idx_writer) -> None:
    idx_writer(tmp_path / "root" / "MNIST" / "raw")
    with pytest.raises(
        HessdynError,
        match=r"^dataset.n_train=41 exceeds the 40 train examples of mnist: lower it or set dataset.n_train=null$",
    ):
        load_dataset(s.MNISTConfig(root=str(tmp_path / "root"), n_train=41), CPU, torch.float32)


@pytest.mark.parametrize("where", ["raw", "MNIST/raw"])
def test_replaced_gz_files_take_effect(tmp_path: Path, idx_writer, where: str) -> None:
    root = tmp_path / "root"
    older = idx_writer(root / where, seed=1)
    _assert_matches(_load(root), older)
    newer = idx_writer(root / where, seed=2)
    future = (root / where / "train-images-idx3-ubyte.gz").stat().st_mtime + 10
    for base in newer:
        os.utime(root / where / f"{base}.gz", (future, future))
    _assert_matches(_load(root), newer)


def test_real_format_matches_torchvision_reader(tmp_path: Path, idx_writer) -> None:
    arrays = idx_writer(tmp_path / "root" / "MNIST" / "raw")
    _load(tmp_path / "root")
    ds = torchvision.datasets.MNIST(str(tmp_path / "root"), train=False)
    assert np.array_equal(ds.data.numpy(), arrays["t10k-images-idx3-ubyte"])
