"""Writing a registered table: columns in the registry's order, unknown columns refused, ranks 1-based."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from hessdyn.io import atomic_write_text
from hessdyn.store.schema import Table

Rows = Sequence[Mapping[str, Any]]


def table_frame(table: Table, rows: Rows | pd.DataFrame, *, all_columns: bool = False) -> pd.DataFrame:
    """``rows`` as a frame whose columns follow ``table``'s order.

    ``all_columns``: every registered column, missing ones empty (fixed-width tables); otherwise only the
    columns present (a table whose columns depend on the metric groups that are on). A column the registry
    does not list, or a rank below 1, raises ValueError: the registry is the contract.
    """
    frame = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    unknown = [c for c in frame.columns if c not in table.names]
    if unknown:
        raise ValueError(
            f"table {table.name}: columns {unknown} are not registered (hessdyn/store/registry.py); "
            f"registered: {', '.join(table.names)}"
        )
    columns = list(table.names) if all_columns else [c for c in table.names if c in frame.columns]
    frame = frame.reindex(columns=columns)
    for column in table.columns:
        if column.name not in frame.columns or column.kind not in ("int", "rank"):
            continue
        values = frame[column.name]
        if values.isna().all() and values.dtype == object:
            continue  # no value at all (e.g. a table without rows): leave the empty column as it is
        values = pd.to_numeric(values).astype("Int64")
        if column.kind == "rank" and bool((values.dropna() < 1).any()):
            raise ValueError(
                f"table {table.name}: column {column.name} holds ranks below 1 (ranks are 1-based)"
            )
        frame[column.name] = values
    return frame


def write_table(
    path: str | os.PathLike[str], table: Table, rows: Rows | pd.DataFrame, *, all_columns: bool = False
) -> None:
    """Write ``rows`` as ``table`` to ``path`` atomically (floats with 17 significant digits: round trip)."""
    frame = table_frame(table, rows, all_columns=all_columns)
    atomic_write_text(path, frame.to_csv(index=False, float_format="%.17g"))
