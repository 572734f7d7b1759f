"""The tables a training run appends to as it goes (``metrics/train.csv``, ``metrics/sharpness.csv``): one
tidy row at a time, in the columns the store registers, consistent with the last checkpoint after a resume."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from hessdyn.io import atomic_write_text
from hessdyn.store import table

COLUMNS = table("train").names  # registered in hessdyn.store.registry
# A diverged step's NaN loss is a measurement, written as "nan"; elsewhere NaN means "no value" (empty).
_NAN_IS_DATA = {"train": frozenset({"loss", "accuracy"})}


class MetricsLog:
    """Append-only CSV of the registered ``metrics`` table ``table_name`` (first column: the step); on resume,
    rows after the checkpoint's step are dropped (they will be written again)."""

    def __init__(self, path: Path, resume_step: int | None, table_name: str = "train") -> None:
        self.path = Path(path)
        self.columns = table(table_name).names
        self._known = frozenset(self.columns)
        self._nan_is_data = _NAN_IS_DATA.get(table_name, frozenset())
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is None or not self.path.exists():
            atomic_write_text(self.path, ",".join(self.columns) + "\n")
        else:
            self._truncate_after(resume_step)
        self._fh = open(self.path, "a", newline="", encoding="utf-8")
        self._writer = csv.writer(self._fh)

    def _truncate_after(self, step: int) -> None:
        """Keep the rows up to ``step``, under today's header: a file written before a column was added
        keeps its rows, the new column empty (columns are matched by name)."""
        with open(self.path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
        header = rows[0] if rows else list(self.columns)
        keep: list[list[str]] = [list(self.columns)]
        for row in rows[1:]:
            # A process killed mid-write can leave a short last line: drop it with the later rows.
            if len(row) == len(header) and row[0].isdigit() and int(row[0]) <= step:
                values = dict(zip(header, row, strict=True))
                keep.append([values.get(c, "") for c in self.columns])
        text = "".join(",".join(r) + "\n" for r in keep)
        atomic_write_text(self.path, text)

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

    def flush(self) -> None:
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()
