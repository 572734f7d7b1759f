"""Which parameter tensor owns which entries of a flat parameter vector.

Accepts the curvature package's ``ParamLayout`` by duck typing (``names`` and ``slices``, optionally
``shapes``) so that this package does not depend on it, or a plain sequence of ``(name, numel)``,
``(name, slice)`` or ``(name, shape)`` pairs in flat order.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class LayoutEntry:
    """One parameter tensor: its name, its entries ``flat[slice]`` and its shape (row-major)."""

    name: str
    slice: slice
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        return self.slice.stop - self.slice.start

    def multi_index(self, flat_index: int) -> tuple[int, ...]:
        """Index inside this tensor of the global flat index ``flat_index``."""
        offset = flat_index - self.slice.start
        if not 0 <= offset < self.numel:
            raise IndexError(f"flat index {flat_index} is not in {self.name}")
        return tuple(int(i) for i in _unravel(offset, self.shape))


# a ParamLayout-like object, or a sequence of LayoutEntry or of (name, numel | slice | shape) pairs
LayoutLike = Any


def as_layout(layout: LayoutLike, size: int | None = None) -> tuple[LayoutEntry, ...]:
    """Normalize a layout to entries that tile ``[0, P)`` in order; check ``P == size`` when given."""
    if hasattr(layout, "names") and hasattr(layout, "slices"):
        shapes = getattr(layout, "shapes", None) or [None] * len(layout.names)
        pairs: list[tuple[str, Any]] = list(zip(layout.names, layout.slices, strict=True))
        entries = [_entry(name, where, shape) for (name, where), shape in zip(pairs, shapes, strict=True)]
    else:
        entries = []
        offset = 0
        for item in layout:
            entry = item if isinstance(item, LayoutEntry) else _entry(item[0], item[1], None, offset)
            entries.append(entry)
            offset = entry.slice.stop
    _check_tiling(entries, size)
    return tuple(entries)


def layout_from_model(model: torch.nn.Module, *, trainable_only: bool = True) -> tuple[LayoutEntry, ...]:
    """Layout of ``model.named_parameters()`` (trainable ones by default), the package's flat order."""
    entries = []
    offset = 0
    for name, parameter in model.named_parameters():
        if trainable_only and not parameter.requires_grad:
            continue
        entries.append(LayoutEntry(name, slice(offset, offset + parameter.numel()), tuple(parameter.shape)))
        offset += parameter.numel()
    return tuple(entries)


def _entry(name: str, spec: Any, shape: Sequence[int] | None, offset: int | None = None) -> LayoutEntry:
    if isinstance(spec, slice):
        if spec.step not in (None, 1) or spec.start is None or spec.stop is None:
            raise ValueError(f"{name}: layout slices must be contiguous with explicit bounds, got {spec}")
        where = slice(int(spec.start), int(spec.stop))
    elif isinstance(spec, numbers.Integral):
        start = 0 if offset is None else offset
        where = slice(start, start + int(spec))
    elif isinstance(spec, Sequence):
        shape = tuple(int(s) for s in spec)
        start = 0 if offset is None else offset
        where = slice(start, start + math.prod(shape))
    else:
        raise TypeError(f"{name}: expected numel, slice or shape, got {type(spec).__name__}")
    numel = where.stop - where.start
    resolved = (numel,) if shape is None else tuple(int(s) for s in shape)
    if math.prod(resolved) != numel:
        raise ValueError(f"{name}: shape {resolved} does not have {numel} entries")
    return LayoutEntry(str(name), where, resolved)


def _check_tiling(entries: Sequence[LayoutEntry], size: int | None) -> None:
    if not entries:
        raise ValueError("empty parameter layout")
    position = 0
    for entry in sorted(entries, key=lambda e: e.slice.start):
        if entry.slice.start != position:
            raise ValueError(
                f"layout does not tile the flat vector: {entry.name} starts at {entry.slice.start}, "
                f"expected {position}"
            )
        position = entry.slice.stop
    if size is not None and position != size:
        raise ValueError(f"layout covers {position} entries but the vectors have P={size}")


def _unravel(offset: int, shape: tuple[int, ...]) -> list[int]:
    index = []
    for extent in reversed(shape):
        index.append(offset % extent)
        offset //= extent
    return index[::-1]
