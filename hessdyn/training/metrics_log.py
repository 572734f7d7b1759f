"""The tables a training run appends to as it goes (``metrics/train.csv``, ``metrics/sharpness.csv``): one
tidy row at a time, in the columns the store registers, consistent with the last checkpoint after a resume."""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from pathlib import Path

from hessdyn.io import atomic_write_text
from hessdyn.store import table
from hessdyn.store.integrity import csv_rows

COLUMNS = table("train").names  # registered in hessdyn.store.registry
# A diverged step's NaN loss is a measurement, written as "nan"; elsewhere NaN means "no value" (empty).
_NAN_IS_DATA = {"train": frozenset({"loss", "accuracy"})}


def logged_steps(path: Path) -> list[int]:
    """The step of every intact row of ``metrics/train.csv``, in file order: a row of the table's width
    whose step is an integer, on a complete line (a process killed mid-write leaves a partial last line)."""
    if not path.exists():
        return []
    header, rows, _ = csv_rows(path)
    width = len(header) or len(COLUMNS)  # a file from before a column was added has its own width
    return [int(row[0]) for row in rows if len(row) == width and row[0].isdigit()]


def _row_key(row: Mapping[str, object]) -> tuple[int, str, str]:
    step = row.get("step")
    return (
        int(str(step)) if step not in (None, "") else 0,
        str(row.get("split") or ""),
        str(row.get("source") or ""),
    )


class MetricsLog:
    """Append-only CSV of the registered ``metrics`` table ``table_name`` (first column: the step); on resume,
    rows after the checkpoint's step are dropped (they will be written again).

    ``rows`` counts the table's rows; every checkpoint and ``run.json`` record train.csv's (``metrics_rows``),
    so rows lost before a resume point are noticed (training resumes from an earlier checkpoint and writes
    them again) and a reader can tell a complete table from a cut one."""

    def __init__(self, path: Path, resume_step: int | None, table_name: str = "train") -> None:
        self.path = Path(path)
        self.columns = table(table_name).names
        self._known = frozenset(self.columns)
        self._nan_is_data = _NAN_IS_DATA.get(table_name, frozenset())
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is None or not self.path.exists():
            atomic_write_text(self.path, ",".join(self.columns) + "\n")
            kept: list[list[str]] = []
        else:
            kept = self._truncate_after(resume_step)
        self.rows = len(kept)
        # (step, split, source): one row each (a table without split/source keys on the step alone)
        self._keys = {_row_key(dict(zip(self.columns, r, strict=True))) for r in kept}
        self._fh = open(self.path, "a", newline="", encoding="utf-8")
        self._writer = csv.writer(self._fh)

    def _truncate_after(self, step: int) -> list[list[str]]:
        """Keep the intact rows up to ``step`` (see :func:`logged_steps`) under today's header: a file
        written before a column was added keeps its rows, the new column empty (columns are matched by
        name). Returns the rows kept."""
        header, rows, _ = csv_rows(self.path)
        header = header or list(self.columns)
        keep: list[list[str]] = []
        for row in rows:
            if len(row) == len(header) and row[0].isdigit() and int(row[0]) <= step:
                values = dict(zip(header, row, strict=True))
                keep.append([values.get(c, "") for c in self.columns])
        text = "".join(",".join(r) + "\n" for r in [list(self.columns), *keep])
        atomic_write_text(self.path, text)
        return keep

    def has_row(self, step: int, split: str, source: str) -> bool:
        return (step, split, source) in self._keys

    def write(self, **row: float | int | str | bool | None) -> None:
        if not row.keys() <= self._known:
            raise ValueError(f"{self.path.name} has no columns {sorted(row.keys() - self._known)}")
        out = []
        for c in self.columns:
            v = row.get(c)
            if v is None or (isinstance(v, float) and math.isnan(v) and c not in self._nan_is_data):
                out.append("")
            elif isinstance(v, float):
                out.append(repr(v))
            else:
                out.append(str(v))
        self._writer.writerow(out)
        self.rows += 1
        self._keys.add(_row_key(row))

    def flush(self) -> None:
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()
