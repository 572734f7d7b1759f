"""Where datasets live on disk, and the small file operations the loaders share (atomic writes, md5)."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from hessdyn.config.errors import HessdynError


def _cache_home() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg).expanduser() if xdg else Path.home() / ".cache"


def default_data_root() -> Path:
    """``$HESSDYN_DATA`` when set (and non-empty), else ``$XDG_CACHE_HOME/hessdyn/data``
    (``~/.cache/hessdyn/data`` when ``XDG_CACHE_HOME`` is unset)."""
    env = os.environ.get("HESSDYN_DATA")
    if env:
        return Path(env).expanduser()
    return _cache_home() / "hessdyn" / "data"


def resolve_root(root: str | os.PathLike[str] | None) -> Path:
    """``dataset.root`` when given (``~`` expanded), else :func:`default_data_root`; made absolute."""
    path = Path(root).expanduser() if root not in (None, "") else default_data_root()
    return path.absolute()


def staging_root(source: Path) -> Path:
    """A writable folder in the user cache that stands in for ``source`` when files must be
    decompressed or extracted but ``source`` is read-only (or not ours to write, like /usr/share)."""
    digest = hashlib.sha1(str(source.resolve()).encode()).hexdigest()[:12]
    return _cache_home() / "hessdyn" / "staged" / digest


def is_writable_dir(path: Path) -> bool:
    """True when ``path`` is (or can be created as) a folder we may write into.

    A folder without any write permission bit counts as read-only even when the kernel would let us
    write (running as root): a ``dr-xr-xr-x`` data folder is a statement that it must not change.
    """
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            return False
        probe = probe.parent
    if not probe.is_dir():
        return False
    return os.access(probe, os.W_OK | os.X_OK) and bool(probe.stat().st_mode & 0o222)


@contextlib.contextmanager
def atomic_output(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it is renamed onto ``target`` (atomic on one
    file system), so a concurrent reader never sees a half-written file. Removed on failure."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; data files are meant to be shared
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def gunzip_atomic(source: Path, target: Path) -> None:
    """Decompress ``source`` (.gz) into ``target`` atomically; a corrupt archive is a one-line error."""
    try:
        with atomic_output(target) as tmp, gzip.open(source, "rb") as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, length=1 << 20)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise HessdynError(f"cannot decompress {source} ({exc}): replace it with an intact copy") from exc


def one_line(exc: BaseException, limit: int = 240) -> str:
    """An exception's text squeezed onto one line (multi-line download errors included)."""
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
