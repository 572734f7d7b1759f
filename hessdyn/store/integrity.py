"""Integrity checks of the files hessdyn writes and reads back, before their contents are used.

Every writer commits a file whole (write aside, fsync, rename: :mod:`hessdyn.io`), so a crash leaves the
old file or the new one. What these checks catch is damage after the fact (a flipped bit on disk or in
transit, a file truncated or edited by hand, a copy from another run) and files of an older version:

- checkpoints and eigenvector files are torch zip archives; every member carries a CRC-32 that
  :func:`zip_problem` recomputes (``zipfile.ZipFile.testzip``: it reads the whole file once, about the
  cost of loading it), then their keys, shapes and finiteness are checked against what the reader expects;
- tables (CSV) are checked for their header, a partial last line, and the rows and SHA-256 that
  ``analysis.json`` recorded when the analysis finished (:func:`table_problem`);
- JSON records must parse to an object with their required keys.

A failed check raises :class:`DamagedFile`: one line naming the file, what is wrong and what to do.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import zipfile
import zlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from hessdyn.config.errors import HessdynError


class DamagedFile(HessdynError):
    """A file hessdyn wrote fails its integrity check. ``path`` is the file, ``problem`` what is wrong."""

    def __init__(self, path: str | os.PathLike[str], problem: str, todo: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path} is damaged ({problem}); {todo}")


# ------------------------------------------------------------------------------------- zip archives
def zip_problem(path: str | os.PathLike[str]) -> str | None:
    """What is wrong with the zip archive at ``path`` (a torch checkpoint), or None when every member's
    CRC-32 matches. Reads the whole file once."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except zipfile.BadZipFile as exc:
        return f"not a complete zip archive: {exc}"
    except (OSError, EOFError, zlib.error, ValueError, NotImplementedError) as exc:
        return f"unreadable zip archive: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return None if bad is None else f"CRC-32 mismatch in its member {bad}"


# --------------------------------------------------------------------------------- tensor payloads
def missing_keys(payload: Mapping[str, Any], keys: Iterable[str]) -> list[str]:
    return [k for k in keys if k not in payload]


def state_dict_problem(state: Mapping[str, Any], expected: Mapping[str, Any]) -> str | None:
    """How the tensors of ``state`` differ from ``expected`` (a model's ``state_dict()``): missing or
    unexpected names, or another shape; None when they fit."""
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    if missing or extra:
        parts = ([f"missing {missing[:3]}"] if missing else []) + (
            [f"unexpected {extra[:3]}"] if extra else []
        )
        return "its tensors are not the model's: " + ", ".join(parts)
    for name, tensor in expected.items():
        got = getattr(state[name], "shape", None)
        if got != tensor.shape:
            return f"tensor {name} has shape {list(got) if got is not None else got}, the model's is {list(tensor.shape)}"
    return None


def vectors_problem(payload: Any, num_params: int | None = None) -> str | None:
    """What is wrong with an eigenvector file's payload: keys, a ``(k, P)`` block of finite unit rows with
    ``k`` eigenvalues, ``P`` = ``num_params`` when given; None when it is sound."""
    import torch

    if not isinstance(payload, dict):
        return f"holds a {type(payload).__name__}, not a dict of tensors"
    missing = missing_keys(payload, ("eigenvalues", "eigenvectors"))
    if missing:
        return f"no {', '.join(missing)}"
    values, vectors = payload["eigenvalues"], payload["eigenvectors"]
    if not (torch.is_tensor(values) and torch.is_tensor(vectors)) or vectors.ndim != 2 or values.ndim != 1:
        return "eigenvalues/eigenvectors are not a (k,) and a (k, P) tensor"
    if vectors.shape[0] != values.shape[0]:
        return f"{values.shape[0]} eigenvalues for {vectors.shape[0]} eigenvectors"
    if num_params is not None and vectors.shape[1] != num_params:
        return f"eigenvectors of length {vectors.shape[1]}, the model has {num_params} parameters"
    if not (bool(torch.isfinite(vectors).all()) and bool(torch.isfinite(values).all())):
        return "non-finite entries"
    for key in ("bottom_eigenvalues", "bottom_eigenvectors"):
        extra = payload.get(key)
        if torch.is_tensor(extra) and extra.numel() and not bool(torch.isfinite(extra).all()):
            return f"non-finite entries in {key}"
    return None


# ------------------------------------------------------------------------------------------- tables
def file_sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def csv_rows(path: str | os.PathLike[str]) -> tuple[list[str], list[list[str]], bool]:
    """(header, rows, complete) of a CSV file; ``complete`` is False when its last line has no newline
    (a partial line, left out of ``rows``)."""
    text = Path(path).read_text(encoding="utf-8")
    complete = text == "" or text.endswith("\n")
    if not complete:
        text = text[: text.rfind("\n") + 1]
    lines = list(csv.reader(io.StringIO(text)))
    return (lines[0] if lines else []), lines[1:], complete


def table_record(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What ``analysis.json`` records of a table it wrote: its rows and SHA-256."""
    _, rows, _ = csv_rows(path)
    return {"rows": len(rows), "sha256": file_sha256(path)}


def header_problem(header: Sequence[str], columns: Sequence[str]) -> str | None:
    """A header must list registered columns in the registry's order (a table may omit some)."""
    unknown = [c for c in header if c not in columns]
    if not header:
        return "no header"
    if unknown:
        return f"unregistered columns {unknown[:3]}"
    order = [columns.index(c) for c in header]
    if order != sorted(order) or len(set(header)) != len(header):
        return "its columns are out of the registry's order"
    return None


def table_problem(
    path: str | os.PathLike[str],
    columns: Sequence[str],
    recorded: Mapping[str, Any] | None = None,
    recorded_by: str = "analysis.json",
) -> str | None:
    """What is wrong with the table at ``path``: missing, unreadable, a header that is not ``columns``
    (the registry's), a partial last line, a row of the wrong width, or rows/content other than
    ``recorded`` (``{"rows", "sha256"}`` from :func:`table_record`, as the file ``recorded_by`` holds
    them). None when it is sound."""
    path = Path(path)
    if not path.is_file():
        return "missing"
    if recorded is not None and recorded.get("sha256"):
        try:
            if file_sha256(path) == recorded["sha256"]:
                return None  # byte for byte what the writer wrote and checked: no need to parse it
        except OSError as exc:
            return f"unreadable: {exc}"
    try:
        header, rows, complete = csv_rows(path)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        return f"unreadable: {exc}"
    problem = header_problem(header, columns)
    if problem:
        return problem
    if not complete:
        return f"its last line is cut off after row {len(rows)}"
    short = next((i for i, row in enumerate(rows) if len(row) != len(header)), None)
    if short is not None:
        return f"row {short + 1} has {len(rows[short])} fields, the header {len(header)}"
    if recorded is not None:
        if recorded.get("rows") is not None and len(rows) != recorded["rows"]:
            return f"{len(rows)} rows, {recorded_by} records {recorded['rows']}"
        if recorded.get("sha256"):  # it did not match (above)
            return f"its content differs from what {recorded_by} records (SHA-256)"
    return None


# -------------------------------------------------------------------------------------- JSON records
def read_json_record(path: str | os.PathLike[str], required: Sequence[str], todo: str) -> dict[str, Any]:
    """The JSON object at ``path``; raises :class:`DamagedFile` when it does not parse to an object holding
    the ``required`` keys."""
    import json

    try:
        with open(path, encoding="utf-8") as fh:
            record = json.load(fh)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DamagedFile(path, f"not valid JSON: {exc}", todo) from None
    if not isinstance(record, dict):
        raise DamagedFile(path, f"holds a JSON {type(record).__name__}, not an object", todo)
    missing = missing_keys(record, required)
    if missing:
        raise DamagedFile(path, f"no {', '.join(missing)}", todo)
    return record


def checksum(obj: Any) -> str:
    """SHA-256 of a JSON-serializable object in a canonical form (sorted keys, no spaces)."""
    import json

    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()
