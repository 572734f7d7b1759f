#!/usr/bin/env python
"""Compare analyses of one run made on different devices / dtypes against a reference analysis.

Reads each analysis's spectrum.csv (eigenvalues, IPR of the top eigenvectors) and summary.csv (λmax,
traces, loss, gradient norm), joins them with the reference's on (step, which, rank) / step, and reports
the largest relative difference of each quantity. A comparison fails when an eigenvalue or trace differs by
more than its tolerance (--tol NAME=REL, one per compared analysis). Prints a Markdown table, exit 1 on a
failure.

usage: python scripts/device_compare.py RUN_DIR REFERENCE_NAME NAME=TOL [NAME=TOL ...]
The analysis folders are found under RUN_DIR by name (a folder named after analysis.name that holds a
summary.csv), so the check does not depend on how the run folder nests them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

STRICT = ("eigenvalue", "lambda_max", "trace", "trace_sq", "loss")  # compared against the tolerance
REPORTED = ("ipr", "grad_norm")  # eigenvectors and gradients: reported, judged by a person


def analysis_folder(run: Path, name: str) -> Path:
    hits = sorted(p.parent for p in run.rglob("summary.csv") if name in p.parent.name)
    exact = [p for p in hits if p.name.endswith(name)]
    if not (exact or hits):
        sys.exit(f"device_compare: no analysis named {name!r} (a folder with summary.csv) under {run}")
    return (exact or hits)[0]


def max_relative(a: pd.Series, b: pd.Series) -> float:
    a, b = a.to_numpy(dtype=float), b.to_numpy(dtype=float)
    ok = np.isfinite(a) & np.isfinite(b)
    if not ok.any():
        return float("nan")
    scale = np.abs(b[ok]).max() or 1.0
    return float(np.abs(a[ok] - b[ok]).max() / scale)


def differences(run: Path, ref: str, other: str) -> dict[str, float]:
    ra, oa = analysis_folder(run, ref), analysis_folder(run, other)
    out = {}
    spec = pd.merge(
        pd.read_csv(ra / "spectrum.csv"), pd.read_csv(oa / "spectrum.csv"), on=["step", "which", "rank"]
    )
    for col in ("eigenvalue", "ipr"):
        if f"{col}_x" in spec:
            out[col] = max_relative(spec[f"{col}_y"], spec[f"{col}_x"])
    summ = pd.merge(pd.read_csv(ra / "summary.csv"), pd.read_csv(oa / "summary.csv"), on="step")
    for col in ("lambda_max", "trace", "trace_sq", "loss", "grad_norm"):
        if f"{col}_x" in summ:
            out[col] = max_relative(summ[f"{col}_y"], summ[f"{col}_x"])
    out["rows"] = float(len(spec))
    return out


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        sys.exit(__doc__)
    run, ref = Path(argv[0]), argv[1]
    failed = False
    cols = [*STRICT, *REPORTED]
    print(f"| analysis vs {ref} | tol | " + " | ".join(cols) + " | verdict |")
    print("|---" * (len(cols) + 3) + "|")
    for spec in argv[2:]:
        name, tol = spec.split("=")
        diff = differences(run, ref, name)
        bad = [c for c in STRICT if c in diff and not diff[c] <= float(tol)]
        failed |= bool(bad) or diff["rows"] == 0
        cells = " | ".join(f"{diff[c]:.1e}" if c in diff else "-" for c in cols)
        verdict = "ok" if not bad and diff["rows"] else f"FAIL ({', '.join(bad) or 'no common rows'})"
        print(f"| {name} | {float(tol):.0e} | {cells} | {verdict} |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
