"""CIFAR-10 / CIFAR-100 read from the python-pickle release files (the layout torchvision uses).

Folders searched for the extracted files, first complete one wins: ``ROOT/cifar-10-batches-py/``
(``ROOT/cifar-100-python/``), ``ROOT/`` itself (a root that *is* that folder), and the user-cache
stand-in of ``ROOT`` (:func:`hessdyn.data.roots.staging_root`). Otherwise the release archive
``ROOT/cifar-10-python.tar.gz`` (``cifar-100-python.tar.gz``) is extracted next to it (into the cache
stand-in when ``ROOT`` is read-only), atomically: into a temp folder, then renamed.

We read the pickles ourselves instead of through ``torchvision.datasets.CIFAR10``, because torchvision
refuses any file whose md5 differs from the official release (a tiny test-written CIFAR, a re-packed
copy). Each file is a dict with ``data`` (uint8 ``(N, 3072)``, channel-major RGB 32x32) and ``labels``
(CIFAR-10) or ``fine_labels`` (CIFAR-100); keys may be bytes (Python 2 release files) or str. The
unpickler only admits the numpy globals an array needs, so a crafted file cannot run code. Integrity:
every file's md5 is compared with torchvision's records and stored in ``info``; a mismatch is logged as
a warning and the files are still loaded when their structure is valid (shapes, dtype, label range).
"""

from __future__ import annotations

import logging
import os
import pickle
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision
from torchvision.datasets.utils import download_and_extract_archive

from hessdyn.config.errors import HessdynError
from hessdyn.data.augment import crop_flip
from hessdyn.data.roots import is_writable_dir, md5sum, one_line, resolve_root, staging_root
from hessdyn.data.splits import DatasetSplits, finalize

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CifarSpec:
    name: str
    title: str
    folder: str  # the release archive's top folder
    archive: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    label_key: str
    names_key: str
    num_classes: int
    tv_class: type[torchvision.datasets.CIFAR10]

    @property
    def data_files(self) -> tuple[str, ...]:
        return self.train_files + self.test_files

    def official_md5(self) -> dict[str, str]:
        records = {name: md5 for name, md5 in self.tv_class.train_list + self.tv_class.test_list}
        records[self.tv_class.meta["filename"]] = self.tv_class.meta["md5"]
        return records


CIFAR10 = CifarSpec(
    "cifar10",
    "CIFAR-10",
    "cifar-10-batches-py",
    "cifar-10-python.tar.gz",
    tuple(f"data_batch_{i}" for i in range(1, 6)),
    ("test_batch",),
    "batches.meta",
    "labels",
    "label_names",
    10,
    torchvision.datasets.CIFAR10,
)
CIFAR100 = CifarSpec(
    "cifar100",
    "CIFAR-100",
    "cifar-100-python",
    "cifar-100-python.tar.gz",
    ("train",),
    ("test",),
    "meta",
    "fine_labels",
    "fine_label_names",
    100,
    torchvision.datasets.CIFAR100,
)


class _ArrayUnpickler(pickle.Unpickler):
    """Admits only what a pickled dict of numpy arrays, lists and strings needs."""

    ALLOWED = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy.core.numeric", "_frombuffer"),
            ("numpy._core.numeric", "_frombuffer"),
            ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("_codecs", "encode"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR file")


def read_pickle(path: Path) -> dict[str, Any]:
    """One CIFAR pickle as a dict with str keys; one-line error when it is not one."""
    try:
        with open(path, "rb") as f:
            obj = _ArrayUnpickler(f, encoding="latin1").load()
    except Exception as exc:
        raise HessdynError(
            f"{path} is not a CIFAR python pickle ({one_line(exc)}): replace it with the original file"
        ) from exc
    if not isinstance(obj, dict):
        raise HessdynError(
            f"{path} holds a {type(obj).__name__}, not a CIFAR dict: replace it with the original file"
        )
    return {(k.decode("latin1") if isinstance(k, bytes) else str(k)): v for k, v in obj.items()}


def read_batch(path: Path, spec: CifarSpec) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 ``(N, 3, 32, 32)`` and labels int64 ``(N,)`` of one data file, structure checked."""
    d = read_pickle(path)
    for key in ("data", spec.label_key):
        if key not in d:
            raise HessdynError(
                f"{path} lacks the key '{key}' of {spec.title} files (has {sorted(d)}): replace it"
            )
    data = np.asarray(d["data"])
    labels = np.asarray(d[spec.label_key], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise HessdynError(
            f"{path}: 'data' must be uint8 of shape (N, 3072), got {data.dtype} {data.shape}: replace the file"
        )
    if labels.shape != (data.shape[0],):
        raise HessdynError(f"{path}: {data.shape[0]} images but {labels.size} labels: replace the file")
    if labels.size and (labels.min() < 0 or labels.max() >= spec.num_classes):
        raise HessdynError(
            f"{path}: labels span {labels.min()}..{labels.max()}, expected 0..{spec.num_classes - 1}: replace the file"
        )
    return data.reshape(-1, 3, 32, 32), labels


def _complete(folder: Path, spec: CifarSpec) -> bool:
    return all((folder / f).is_file() for f in spec.data_files)


def _extract(archive: Path, spec: CifarSpec, parent: Path) -> Path:
    """Extract ``spec.folder`` from the release archive into ``parent`` atomically; returns the folder."""
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{spec.folder}.", dir=parent))
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = [m for m in tar.getmembers() if m.name.split("/")[0] == spec.folder]
            if hasattr(tarfile, "data_filter"):
                tar.extractall(tmp, members=members, filter="data")
            else:  # Python without extraction filters: admit plain files and folders with safe names only
                members = [m for m in members if (m.isfile() or m.isdir()) and ".." not in m.name.split("/")]
                tar.extractall(tmp, members=members)
        if not _complete(tmp / spec.folder, spec):
            raise HessdynError(
                f"{archive} lacks {spec.folder}/ with {', '.join(spec.data_files)}: replace the archive"
            )
        try:
            os.replace(tmp / spec.folder, parent / spec.folder)
        except OSError:
            if not _complete(parent / spec.folder, spec):  # not a concurrent extraction that won the race
                raise
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise HessdynError(
            f"cannot extract {archive} ({one_line(exc)}): replace it with an intact copy"
        ) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return parent / spec.folder


def _missing_message(spec: CifarSpec, root: Path) -> str:
    files = ", ".join(spec.data_files + (spec.meta_file,))
    return (
        f"{spec.title} not found: put {spec.archive} in {root}/ or its extracted {root / spec.folder}/ "
        f"({files}) (or set dataset.root / $HESSDYN_DATA, or dataset.download=true with network access)"
    )


def locate_cifar(root: Path, spec: CifarSpec, download: bool = False) -> Path:
    """The folder holding the extracted files, extracting or downloading the archive when needed."""
    stage = staging_root(root)
    for folder in (root / spec.folder, root, stage / spec.folder):
        if _complete(folder, spec):
            return folder
    parent = root if is_writable_dir(root) else stage
    archive = root / spec.archive
    partial = next((f for f in (root / spec.folder, stage / spec.folder) if f.is_dir()), None)
    if partial is not None and (archive.is_file() or not download):
        missing = ", ".join(f for f in spec.data_files if not (partial / f).is_file())
        fix = f"delete that folder to extract {archive.name} again" if archive.is_file() else "add them there"
        raise HessdynError(f"{spec.title} incomplete in {partial}/: missing {missing}; {fix}")
    if not archive.is_file() and download:
        if not is_writable_dir(root):
            raise HessdynError(
                f"{spec.title} download needs a writable data root, {root} is not: set dataset.root"
            )
        try:
            download_and_extract_archive(
                spec.tv_class.url, str(root), filename=spec.archive, md5=spec.tv_class.tgz_md5
            )
        except Exception as exc:
            raise HessdynError(
                f"{spec.title} download failed ({one_line(exc)}); {_missing_message(spec, root)}"
            ) from exc
        if _complete(root / spec.folder, spec):
            return root / spec.folder
    if archive.is_file():
        return _extract(archive, spec, parent)
    raise HessdynError(_missing_message(spec, root))


def load_cifar(spec: CifarSpec, cfg: Any, device: torch.device, dtype: torch.dtype) -> DatasetSplits:
    """Load ``spec`` from ``cfg.root`` (see module doc): images ``(N, 3, 32, 32)`` in [0, 1] before
    normalization; ``cfg.augment`` adds :func:`hessdyn.data.augment.crop_flip`."""
    root = resolve_root(getattr(cfg, "root", None))
    folder = locate_cifar(root, spec, bool(getattr(cfg, "download", False)))
    splits = []
    for files_of_split in (spec.train_files, spec.test_files):
        parts = [read_batch(folder / name, spec) for name in files_of_split]
        splits.append(
            (
                torch.from_numpy(np.concatenate([p[0] for p in parts])),
                torch.from_numpy(np.concatenate([p[1] for p in parts])),
            )
        )
    official = spec.official_md5()
    files: dict[str, Any] = {}
    for name in spec.data_files + (spec.meta_file,):
        path = folder / name
        if path.is_file():
            digest = md5sum(path)
            files[name] = {
                "bytes": path.stat().st_size,
                "md5": digest,
                "official_content": digest == official.get(name),
            }
    mismatched = [name for name, entry in files.items() if not entry["official_content"]]
    if mismatched:
        log.warning(
            "%s files in %s differ from the official release's md5 (%s); loading them since their structure is valid",
            spec.title,
            folder,
            ", ".join(mismatched),
        )
    class_names: list[str] | None = None
    if (folder / spec.meta_file).is_file():
        names = read_pickle(folder / spec.meta_file).get(spec.names_key)
        if isinstance(names, list) and len(names) == spec.num_classes:
            class_names = [n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names]
    info = {
        "source": str(folder),
        "files": files,
        "integrity": "official md5"
        if not mismatched
        else f"md5 differs from the official release: {', '.join(mismatched)}",
        "classes": class_names,
    }
    augment = (lambda norm: crop_flip(4, norm)) if getattr(cfg, "augment", False) else None
    return finalize(
        spec.name,
        splits[0],
        splits[1],
        spec.num_classes,
        cfg,
        device,
        dtype,
        info,
        scale=255.0,
        augment_factory=augment,
    )
