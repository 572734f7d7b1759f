"""MNIST and Fashion-MNIST through torchvision's dataset classes, from forgiving data-root layouts.

torchvision (``download=False``) reads the *uncompressed* idx files from ``ROOT/<Class>/raw/``
(``<Class>`` is ``MNIST`` or ``FashionMNIST``). We look for the four files, each either uncompressed or
``.gz``, in these folders, first complete one wins:

1. ``ROOT/<Class>/raw/`` (torchvision's layout),  2. ``ROOT/raw/``,  3. ``ROOT/``,  4. ``ROOT/<Class>/``,
5. Fashion-MNIST only: Debian's ``/usr/share/datasets/fashion-mnist/`` (package dataset-fashion-mnist,
   which installs the four ``*-ubyte.gz`` files under their usual names).

``.gz`` files in ``ROOT/<Class>/raw/`` are decompressed there (atomically: temp file, then rename).
Files found in any other folder, or in a read-only ``ROOT/<Class>/raw/`` (no write permission bit, even
when running as root), are mirrored into torchvision's layout in the user cache
(:func:`hessdyn.data.roots.staging_root`, keyed by the source folder): ``.gz`` decompressed, uncompressed
files symlinked. Nothing is written into any other source folder, never into /usr/share. An
uncompressed file older than the ``.gz`` beside it (or a staged copy older than its source) counts as
stale and is derived again, so replacing the ``.gz`` files takes effect.
Headers are checked (magic 2051/2049, sizes) before torchvision reads the files, so a truncated or
foreign file is a one-line error naming it. ``info["files"]`` records each file's md5 and whether its
uncompressed content is the official release's (a mismatch, e.g. test-written files, is logged as a
warning and loaded anyway).
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import struct
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torchvision

from hessdyn.config.errors import HessdynError
from hessdyn.data.roots import gunzip_atomic, is_writable_dir, md5sum, one_line, resolve_root, staging_root
from hessdyn.data.splits import DatasetSplits, finalize

log = logging.getLogger(__name__)

IDX_FILES: tuple[str, ...] = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049  # 0x0803: ubyte, 3 dims; 0x0801: ubyte, 1 dim
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
# md5 of the *uncompressed* official files (the .gz bytes vary between redistributions)
OFFICIAL_MD5: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    },
}


@dataclass(frozen=True)
class IdxDataset:
    name: str  # hessdyn's dataset name
    title: str  # for messages
    tv_class: type[torchvision.datasets.MNIST]

    @property
    def folder(self) -> str:  # torchvision's folder name, its class name
        return self.tv_class.__name__


MNIST = IdxDataset("mnist", "MNIST", torchvision.datasets.MNIST)
FASHION_MNIST = IdxDataset("fashion_mnist", "Fashion-MNIST", torchvision.datasets.FashionMNIST)


def _candidate_folders(root: Path, spec: IdxDataset) -> list[Path]:
    folders = [root / spec.folder / "raw", root / "raw", root, root / spec.folder]
    if spec is FASHION_MNIST:  # read at call time so tests can point it elsewhere
        folders.append(DEBIAN_FASHION_MNIST)
    return folders


@dataclass(frozen=True)
class IdxFile:
    """One of the four files in a folder: its uncompressed and/or ``.gz`` copy."""

    plain: Path | None
    gz: Path | None

    @property
    def plain_is_current(self) -> bool:
        """The uncompressed copy exists and is not older than the .gz beside it (else re-decompress)."""
        if self.plain is None:
            return False
        return self.gz is None or self.plain.stat().st_mtime >= self.gz.stat().st_mtime

    @property
    def source(self) -> Path:
        """The copy to read: the uncompressed one when current, else the .gz."""
        return self.plain if self.plain_is_current or self.gz is None else self.gz  # type: ignore[return-value]


def _inventory(folder: Path) -> dict[str, IdxFile]:
    """The idx files present in ``folder`` (uncompressed and/or .gz), by base name."""
    found: dict[str, IdxFile] = {}
    for base in IDX_FILES:
        plain, gz = folder / base, folder / f"{base}.gz"
        entry = IdxFile(plain if plain.is_file() else None, gz if gz.is_file() else None)
        if entry.plain or entry.gz:
            found[base] = entry
    return found


def _missing_message(spec: IdxDataset, root: Path, partial: tuple[Path, list[str]] | None) -> str:
    where = "set dataset.root / $HESSDYN_DATA, or dataset.download=true with network access"
    if spec is FASHION_MNIST:
        where += ", or install Debian's dataset-fashion-mnist"
    if partial is not None:
        folder, missing = partial
        names = ", ".join(f"{m}.gz" for m in missing)
        return f"{spec.title} incomplete in {folder}/: missing {names} (or uncompressed); add them there ({where})"
    names = ", ".join(f"{base}.gz" for base in IDX_FILES)
    return f"{spec.title} not found: put {names} in {root / spec.folder / 'raw'}/ ({where})"


def locate_idx_files(root: Path, spec: IdxDataset) -> tuple[Path, dict[str, IdxFile]] | None:
    """The first candidate folder holding all four files, with their inventory; None when none does."""
    for folder in _candidate_folders(root, spec):
        files = _inventory(folder)
        if len(files) == len(IDX_FILES):
            return folder, files
    return None


def _first_partial(root: Path, spec: IdxDataset) -> tuple[Path, list[str]] | None:
    for folder in _candidate_folders(root, spec):
        files = _inventory(folder)
        if files:
            return folder, [b for b in IDX_FILES if b not in files]
    return None


def _stage(root: Path, spec: IdxDataset, folder: Path, files: dict[str, IdxFile]) -> Path:
    """Make ``TV_ROOT/<Class>/raw/`` hold the four current uncompressed files; return ``TV_ROOT``.

    ``ROOT/<Class>/raw/`` itself is completed in place when writable; any other source folder (or a
    read-only one) is mirrored in the user cache, keyed by the source folder's path.
    """
    canonical = root / spec.folder / "raw"
    if folder == canonical:
        if all(f.plain_is_current for f in files.values()):
            return root
        if is_writable_dir(canonical):
            for base, f in files.items():
                if not f.plain_is_current:
                    gunzip_atomic(f.gz, canonical / base)  # type: ignore[arg-type]
            return root
    tv_root = staging_root(folder)
    raw = tv_root / spec.folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for base, f in files.items():
        src, dest = f.source, raw / base
        if dest.is_file() and dest.stat().st_size > 0 and dest.stat().st_mtime >= src.stat().st_mtime:
            continue  # staged before from the same, unchanged source (a link reports its target's mtime)
        if src.suffix == ".gz":
            gunzip_atomic(src, dest)
        else:
            tmp = raw / f".{base}.{os.getpid()}.{uuid.uuid4().hex[:8]}.link"
            os.symlink(src.resolve(), tmp)
            os.replace(tmp, dest)
    return tv_root


def check_idx_header(path: Path, magic: int) -> tuple[int, ...]:
    """The dims of an idx file after checking its magic number and its length; one-line error otherwise."""
    ndim = magic & 0xFF
    with open(path, "rb") as f:
        header = f.read(4 * (1 + ndim))
    size = path.stat().st_size
    gz = path.with_name(path.name + ".gz")
    fix = f"delete it to decompress {gz.name} again" if gz.is_file() else "replace it with the original file"
    if len(header) < 4 * (1 + ndim) or struct.unpack(">i", header[:4])[0] != magic:
        raise HessdynError(f"{path} is not an idx file with magic number {magic}: {fix}")
    dims = struct.unpack(f">{ndim}i", header[4:])
    expected = 4 * (1 + ndim) + math.prod(dims)
    if size != expected:
        raise HessdynError(
            f"{path} is truncated or padded ({size} bytes, header {dims} needs {expected}): {fix}"
        )
    return dims


def _download(root: Path, spec: IdxDataset) -> None:
    if not is_writable_dir(root):
        raise HessdynError(
            f"{spec.title} download needs a writable data root, {root} is not: set dataset.root"
        )
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # torchvision prints per-mirror progress
            spec.tv_class(str(root), train=True, download=True)
    except Exception as exc:  # any network/archive failure ends in the same one-line instruction
        raise HessdynError(
            f"{spec.title} download failed ({one_line(exc)}); {_missing_message(spec, root, None)}"
        ) from exc


def _provenance(files: dict[str, IdxFile], raw: Path, spec: IdxDataset) -> dict[str, Any]:
    """Per file: the source read, its md5, and the md5 of the uncompressed content compared with the
    official release. The content check is the meaningful one: redistributed copies (Debian's package,
    this machine's shared copies) are recompressed, so their .gz bytes differ from torchvision's records
    while the data is identical."""
    out: dict[str, Any] = {}
    for base, f in files.items():
        content = md5sum(raw / base)
        out[base] = {
            "source": str(f.source),
            "bytes": f.source.stat().st_size,
            "md5": md5sum(f.source) if f.source.suffix == ".gz" else content,
            "md5_uncompressed": content,
            "official_content": OFFICIAL_MD5[spec.name][base] == content,
        }
    if not all(entry["official_content"] for entry in out.values()):
        odd = [base for base, entry in out.items() if not entry["official_content"]]
        log.warning(
            "%s files differ from the official release (%s); loading them anyway", spec.title, ", ".join(odd)
        )
    return out


def load_idx_dataset(spec: IdxDataset, cfg: Any, device: torch.device, dtype: torch.dtype) -> DatasetSplits:
    """Load ``spec`` from ``cfg.root`` (see module doc); images ``(N, 1, 28, 28)`` in [0, 1] before
    normalization, 10 classes."""
    root = resolve_root(getattr(cfg, "root", None))
    found = locate_idx_files(root, spec)
    if found is None and getattr(cfg, "download", False):
        _download(root, spec)
        found = locate_idx_files(root, spec)
    if found is None:
        raise HessdynError(_missing_message(spec, root, _first_partial(root, spec)))
    folder, files = found
    tv_root = _stage(root, spec, folder, files)
    raw = tv_root / spec.folder / "raw"
    n = {}
    for base in IDX_FILES:
        dims = check_idx_header(raw / base, IMAGES_MAGIC if "images" in base else LABELS_MAGIC)
        n[base] = dims[0]
    for split in ("train", "t10k"):
        if n[f"{split}-images-idx3-ubyte"] != n[f"{split}-labels-idx1-ubyte"]:
            raise HessdynError(
                f"{spec.title} in {folder}: {split} images and labels disagree "
                f"({n[f'{split}-images-idx3-ubyte']} vs {n[f'{split}-labels-idx1-ubyte']} items): "
                "replace them with the original files"
            )
    try:
        train = spec.tv_class(str(tv_root), train=True, download=False)
        test = spec.tv_class(str(tv_root), train=False, download=False)
    except Exception as exc:
        raise HessdynError(
            f"{spec.title} in {folder} could not be read ({one_line(exc)}): replace the files"
        ) from exc
    for split, ds in (("train", train), ("test", test)):
        if ds.targets.numel() and int(ds.targets.max()) >= 10:
            raise HessdynError(
                f"{spec.title} in {folder}: {split} labels go up to {int(ds.targets.max())}, expected 0..9: "
                "replace the label files"
            )
    info = {
        "source": str(folder),
        "torchvision_root": str(tv_root),
        "files": _provenance(files, raw, spec),
        "classes": list(spec.tv_class.classes),
    }
    return finalize(
        spec.name,
        (train.data.unsqueeze(1), train.targets),
        (test.data.unsqueeze(1), test.targets),
        10,
        cfg,
        device,
        dtype,
        info,
        scale=255.0,
    )
