"""CIFAR-10/100 from tiny files written in the release pickle format (folder, archive, read-only root)."""

from __future__ import annotations

import logging
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from hessdyn.config import schema as s
from hessdyn.config.errors import HessdynError
from hessdyn.data import load_dataset

CPU = torch.device("cpu")


def _load(root: Path, cls=s.CIFAR10Config, **kw):
    kw.setdefault("normalize", False)
    return load_dataset(cls(root=str(root), **kw), CPU, torch.float32)


def _pixels(x: torch.Tensor) -> np.ndarray:
    return torch.round(x * 255).to(torch.uint8).numpy()


@pytest.mark.parametrize("bytes_keys", [True, False])
def test_cifar10_loads_genuine_format_files_that_fail_the_md5(
    tmp_path: Path, cifar_writer, bytes_keys: bool, caplog: pytest.LogCaptureFixture
) -> None:
    x_tr, y_tr, x_te, y_te = cifar_writer(tmp_path / "cifar-10-batches-py", per_file=6, bytes_keys=bytes_keys)
    with caplog.at_level(logging.WARNING):
        data = _load(tmp_path)
    assert data.name == "cifar10" and data.num_classes == 10 and data.input_shape == (3, 32, 32)
    assert len(data.train) == 30 and len(data.test) == 6
    assert np.array_equal(_pixels(data.train.x), x_tr) and np.array_equal(_pixels(data.test.x), x_te)
    assert data.train.y.tolist() == y_tr.tolist() and data.test.y.tolist() == y_te.tolist()
    assert data.info["classes"] == [f"class{i}" for i in range(10)]
    assert data.info["files"]["data_batch_1"]["official_content"] is False
    assert data.info["integrity"].startswith(
        "md5 differs from the official release: data_batch_1, data_batch_2"
    )
    assert "differ from the official release's md5" in caplog.text
    assert data.augment is None
    # torchvision itself refuses these files: the reason we read the pickles ourselves
    with pytest.raises(RuntimeError, match="corrupted"):
        torchvision.datasets.CIFAR10(str(tmp_path), train=True)


def test_cifar100_uses_fine_labels_and_100_classes(tmp_path: Path, cifar_writer) -> None:
    x_tr, y_tr, x_te, y_te = cifar_writer(tmp_path / "cifar-100-python", hundred=True, per_file=4)
    data = _load(tmp_path, s.CIFAR100Config)
    assert data.name == "cifar100" and data.num_classes == 100
    assert len(data.train) == 20 and len(data.test) == 4
    assert np.array_equal(_pixels(data.train.x), x_tr)
    assert data.train.y.tolist() == y_tr.tolist() and data.test.y.tolist() == y_te.tolist()
    assert len(data.info["classes"]) == 100


def test_root_that_is_the_extracted_folder_itself(tmp_path: Path, cifar_writer) -> None:
    x_tr, *_ = cifar_writer(tmp_path / "batches")
    assert np.array_equal(_pixels(_load(tmp_path / "batches").train.x), x_tr)


def _make_archive(folder: Path, archive: Path) -> None:
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)


@pytest.mark.parametrize("hundred", [False, True])
def test_release_archive_is_extracted(tmp_path: Path, cifar_writer, hundred: bool) -> None:
    name, archive = (
        ("cifar-100-python", "cifar-100-python.tar.gz")
        if hundred
        else ("cifar-10-batches-py", "cifar-10-python.tar.gz")
    )
    x_tr, *_ = cifar_writer(tmp_path / "src" / name, hundred=hundred)
    root = tmp_path / "root"
    root.mkdir()
    _make_archive(tmp_path / "src" / name, root / archive)
    data = _load(root, s.CIFAR100Config if hundred else s.CIFAR10Config)
    assert np.array_equal(_pixels(data.train.x), x_tr)
    assert sorted(p.name for p in root.iterdir()) == sorted([archive, name])  # no temp folder left
    assert data.info["source"] == str(root / name)


def test_read_only_root_with_archive_extracts_into_the_cache(
    tmp_path: Path, cifar_writer, isolated_data_env: Path
) -> None:
    x_tr, *_ = cifar_writer(tmp_path / "src" / "cifar-10-batches-py")
    root = tmp_path / "ro"
    root.mkdir()
    _make_archive(tmp_path / "src" / "cifar-10-batches-py", root / "cifar-10-python.tar.gz")
    root.chmod(0o555)
    try:
        first = _load(root)
        second = _load(root)
    finally:
        root.chmod(0o755)
    assert [p.name for p in root.iterdir()] == ["cifar-10-python.tar.gz"]
    assert Path(first.info["source"]).is_relative_to(isolated_data_env / "hessdyn" / "staged")
    assert np.array_equal(_pixels(second.train.x), x_tr)


def test_missing_cifar_names_archive_folder_and_files(tmp_path: Path) -> None:
    with pytest.raises(HessdynError) as err:
        _load(tmp_path / "none")
    root = tmp_path / "none"
    assert str(err.value) == (
        f"CIFAR-10 not found: put cifar-10-python.tar.gz in {root}/ or its extracted {root}/cifar-10-batches-py/ "
        "(data_batch_1, data_batch_2, data_batch_3, data_batch_4, data_batch_5, test_batch, batches.meta) "
        "(or set dataset.root / $HESSDYN_DATA, or dataset.download=true with network access)"
    )


def test_incomplete_folder_names_the_missing_files(tmp_path: Path, cifar_writer) -> None:
    cifar_writer(tmp_path / "cifar-10-batches-py")
    os.unlink(tmp_path / "cifar-10-batches-py" / "data_batch_4")
    with pytest.raises(
        HessdynError,
        match=r"^CIFAR-10 incomplete in .*/cifar-10-batches-py/: missing data_batch_4; add them there$",
    ):
        _load(tmp_path)


def test_failed_download_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torchvision.datasets.CIFAR100, "url", "http://127.0.0.1:9/cifar-100-python.tar.gz")
    with pytest.raises(HessdynError) as err:
        _load(tmp_path / "root", s.CIFAR100Config, download=True)
    message = str(err.value)
    assert message.startswith("CIFAR-100 download failed (")
    assert "; CIFAR-100 not found: put cifar-100-python.tar.gz in" in message and "\n" not in message


def test_pickle_with_foreign_globals_is_refused_not_executed(tmp_path: Path, cifar_writer) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    cifar_writer(folder)
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    (folder / "data_batch_2").write_bytes(pickle.dumps({b"data": Exploit(), b"labels": []}))
    with pytest.raises(
        HessdynError, match=r"data_batch_2 is not a CIFAR python pickle \(global \w+\.mkdir is not allowed"
    ):
        _load(tmp_path)
    assert not marker.exists()


def test_wrong_shapes_and_labels_are_clear_errors(tmp_path: Path, cifar_writer) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    cifar_writer(folder)
    good = pickle.loads((folder / "test_batch").read_bytes())
    bad = {**good, b"data": good[b"data"][:, :100]}
    (folder / "test_batch").write_bytes(pickle.dumps(bad))
    with pytest.raises(
        HessdynError, match=r"test_batch: 'data' must be uint8 of shape \(N, 3072\), got uint8 \(6, 100\)"
    ):
        _load(tmp_path)
    bad = {**good, b"labels": [10] * 6}
    (folder / "test_batch").write_bytes(pickle.dumps(bad))
    with pytest.raises(HessdynError, match=r"test_batch: labels span 10\.\.10, expected 0\.\.9"):
        _load(tmp_path)


def test_normalization_is_per_channel_from_train_split(tmp_path: Path, cifar_writer) -> None:
    x_tr, *_ = cifar_writer(tmp_path / "cifar-10-batches-py", per_file=8)
    data = _load(tmp_path, normalize=True)
    x = data.train.x.double()
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(3, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(x.std(dim=(0, 2, 3), correction=0), torch.ones(3, dtype=torch.float64), atol=1e-6)
    expected_mean = (x_tr / 255.0).mean(axis=(0, 2, 3))
    assert np.allclose(data.info["normalization"]["mean"], expected_mean, rtol=0, atol=1e-7)
    assert data.info["normalization"]["per"] == "channel"
