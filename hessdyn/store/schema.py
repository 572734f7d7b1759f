"""The registry of the tables hessdyn writes: which file, which metric group, which columns in what order,
with units and valid domains; and the domain of every metric a report draws.

A table is registered once (:func:`register_table`, in :mod:`hessdyn.store.registry`); writers order and
check their columns against it (:mod:`hessdyn.store.csv`), the report reads column kinds and metric
domains from it, and docs/design.md's table section is generated from it (:mod:`hessdyn.store.docs`).
Adding a metric group's table is one :class:`Table` entry.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Kind = Literal["int", "float", "text", "bool", "rank"]
Folder = Literal["metrics", "analysis"]
Per = Literal["step", "run"]


@dataclass(frozen=True)
class Domain:
    """Valid range ``[low, high]`` of a metric; ``positive``: cut at 0 where every seed's value is > 0.

    A report cuts the confidence band of a mean over seeds to this range (:mod:`hessdyn.report.bands`).
    """

    low: float = -math.inf
    high: float = math.inf
    positive: bool = False

    def describe(self) -> str:
        """Short text for the docs: ``[0, 1]``, ``>= 0``, ``> 0 where all are``, or empty."""
        if self.positive:
            return "> 0 where all are"
        if math.isinf(self.low) and math.isinf(self.high):
            return ""
        if math.isinf(self.high):
            return f">= {self.low:g}"
        return f"[{self.low:g}, {self.high:g}]"


FRACTION = Domain(0.0, 1.0)
DISPLACEMENT = Domain(0.0, 2.0)
NON_NEGATIVE = Domain(0.0)
POSITIVE = Domain(positive=True)
UNBOUNDED = Domain()


@dataclass(frozen=True)
class Column:
    """One column of a table (or one metric a report derives from the tables).

    ``kind`` ``rank`` is an integer rank, 1-based (rank 1 = the largest eigenvalue, or the smallest for
    bottom rows): writers refuse a rank below 1. ``unit`` is free text ("" for dimensionless text).
    """

    name: str
    unit: str
    doc: str
    kind: Kind = "float"
    domain: Domain = UNBOUNDED

    @property
    def is_text(self) -> bool:
        """Read as text, not coerced to numbers (``bool`` columns keep ``True``/``False``)."""
        return self.kind in ("text", "bool")


@dataclass(frozen=True)
class Table:
    """A tidy CSV table: ``folder/name.csv`` of a run (``metrics``) or of an analysis folder.

    ``group``: the analysis metric group that writes it (None: written always). ``per``: ``step`` tables
    are concatenated from per-checkpoint records, ``run`` tables are written once per analysis.
    ``always``: written (as a header) even without rows. Columns are written in the order listed here;
    a writer that produces an unlisted column fails.
    """

    name: str
    folder: Folder
    doc: str
    columns: tuple[Column, ...]
    group: str | None = None
    per: Per = "run"
    always: bool = False

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError(f"table {self.name}: duplicate columns in {names}")

    @property
    def file_name(self) -> str:
        return f"{self.name}.csv"

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"table {self.name} has no column {name!r}; columns: {', '.join(self.names)}")


_TABLES: dict[str, Table] = {}
_METRICS: dict[str, Column] = {}


def _register_metric(column: Column, where: str) -> None:
    known = _METRICS.get(column.name)
    if known is not None and known.domain != column.domain:
        raise ValueError(
            f"{where}: metric {column.name!r} has domain {column.domain} but is registered with {known.domain}"
        )
    _METRICS.setdefault(column.name, column)


def register_table(table: Table) -> Table:
    """Add ``table`` to the registry (its columns become metrics with their domains); returns it."""
    if table.name in _TABLES:
        raise ValueError(f"table {table.name!r} is registered twice")
    for column in table.columns:
        _register_metric(column, f"table {table.name}")
    _TABLES[table.name] = table
    return table


def register_metrics(*metrics: Column) -> None:
    """Metrics that are not a column name: values of a ``metric`` column (trajectory.csv) or quantities a
    report derives from the tables (``final_test_loss``); registered for their unit and domain."""
    for metric in metrics:
        _register_metric(metric, "metric")


def table(name: str) -> Table:
    """The registered table ``name`` (``summary``, ``spectrum``, ``train``, ...)."""
    try:
        return _TABLES[name]
    except KeyError:
        raise KeyError(f"no table {name!r} is registered; tables: {', '.join(_TABLES)}") from None


def tables(folder: Folder | None = None, per: Per | None = None) -> tuple[Table, ...]:
    """Registered tables in registration order, optionally only those of ``folder`` / ``per``."""
    return tuple(
        t
        for t in _TABLES.values()
        if (folder is None or t.folder == folder) and (per is None or t.per == per)
    )


def metric(name: str) -> Column | None:
    """The registered metric (column or derived) ``name``, or None."""
    return _METRICS.get(name)


def metrics() -> tuple[Column, ...]:
    return tuple(_METRICS.values())


def domain(name: str) -> Domain:
    """The valid range of metric ``name`` (unbounded for a metric without one)."""
    found = _METRICS.get(name)
    return found.domain if found is not None else UNBOUNDED


def text_columns(names: Iterable[str] | None = None) -> frozenset[str]:
    """Names of the columns read as text in any registered table (optionally restricted to ``names``)."""
    out = {c.name for t in _TABLES.values() for c in t.columns if c.is_text}
    return frozenset(out if names is None else out & set(names))
