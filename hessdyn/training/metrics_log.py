"""The training metrics table (``metrics/train.csv``): one tidy row per (step, split, source)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from hessdyn.io import atomic_write_text
from hessdyn.store import table

COLUMNS = table("train").names  # registered in hessdyn.store.registry
_KNOWN = frozenset(COLUMNS)


class MetricsLog:
    """Append-only CSV; on resume, rows after the checkpoint's step are dropped (they will be re-logged)."""

    def __init__(self, path: Path, resume_step: int | None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is None or not self.path.exists():
            atomic_write_text(self.path, ",".join(COLUMNS) + "\n")
        else:
            self._truncate_after(resume_step)
        self._fh = open(self.path, "a", newline="", encoding="utf-8")
        self._writer = csv.writer(self._fh)

    def _truncate_after(self, step: int) -> None:
        """Keep the rows up to ``step``, under today's header: a file written before a column was added
        keeps its rows, the new column empty (columns are matched by name)."""
        with open(self.path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
        header = rows[0] if rows else list(COLUMNS)
        keep: list[list[str]] = [list(COLUMNS)]
        for row in rows[1:]:
            # A process killed mid-write can leave a short last line: drop it with the later rows.
            if len(row) == len(header) and row[0].isdigit() and int(row[0]) <= step:
                values = dict(zip(header, row, strict=True))
                keep.append([values.get(c, "") for c in COLUMNS])
        text = "".join(",".join(r) + "\n" for r in keep)
        atomic_write_text(self.path, text)

    def write(self, **row: float | int | str | None) -> None:
        if not row.keys() <= _KNOWN:
            raise ValueError(f"train.csv has no columns {sorted(row.keys() - _KNOWN)}")
        out = []
        for c in COLUMNS:
            v = row.get(c)
            if v is None or (isinstance(v, float) and math.isnan(v) and c not in ("loss", "accuracy")):
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
