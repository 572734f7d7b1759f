"""Ways to damage a file the way a disk, a copy or a careless hand does, for the integrity tests."""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path


def member_data_offset(path: Path, member: str) -> tuple[int, int]:
    """(offset, size) of the stored bytes of zip member ``member`` (torch stores its records uncompressed)."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
    with open(path, "rb") as fh:
        fh.seek(info.header_offset)
        header = fh.read(30)
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    return info.header_offset + 30 + name_len + extra_len, info.compress_size


def tensor_members(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as archive:
        return [n for n in archive.namelist() if "/data/" in n and not n.endswith("/")]


def xor_bytes(path: Path, offset: int, count: int = 4, mask: int = 0x5A) -> None:
    data = bytearray(path.read_bytes())
    for i in range(offset, min(offset + count, len(data))):
        data[i] ^= mask
    path.write_bytes(bytes(data))


def flip_tensor_bytes(path: Path, count: int = 4) -> str:
    """XOR ``count`` bytes in the middle of the largest tensor record (a weight matrix); returns its member."""
    with zipfile.ZipFile(path) as archive:
        member = max(tensor_members(path), key=lambda n: archive.getinfo(n).file_size)
    offset, size = member_data_offset(path, member)
    xor_bytes(path, offset + size // 2, count)
    return member


def flip_pickle_bytes(path: Path, count: int = 4) -> None:
    """XOR bytes inside the pickled structure (``data.pkl``) of a torch file."""
    with zipfile.ZipFile(path) as archive:
        member = next(n for n in archive.namelist() if n.endswith("data.pkl"))
    offset, size = member_data_offset(path, member)
    xor_bytes(path, offset + size // 3, count)


def cut(path: Path, keep: float | int) -> None:
    """Truncate ``path`` to ``keep`` bytes (an int) or that fraction of its size (a float)."""
    data = path.read_bytes()
    n = keep if isinstance(keep, int) else int(len(data) * keep)
    path.write_bytes(data[:n])
