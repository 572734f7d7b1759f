"""Cost of the integrity checks against the work they guard (ratios measured side by side).

For checkpoints of growing size (a dict of float32 tensors, saved by ``torch.save`` as hessdyn saves
them), times, per file and from the page cache:
  load  - ``torch.load(weights_only=True)``, what every reader pays anyway;
  crc   - ``hessdyn.store.integrity.zip_problem`` (``zipfile.testzip``: every member's CRC-32);
and prints ``crc`` in MB/s and as a fraction of ``load``. Then the same for a table's check
(``table_problem``, with the SHA-256 ``analysis.json`` records and without a record: header, partial last
line, row widths) against ``pandas.read_csv`` of the table.

    python scripts/bench_integrity.py [--sizes-mb 1 10 100] [--repeats 5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from hessdyn.store import table
from hessdyn.store.integrity import table_problem, table_record, zip_problem


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def checkpoint(path: Path, megabytes: float) -> None:
    n = int(megabytes * 1e6 / 4)
    layers = 8
    state = {f"{i}.weight": torch.randn(n // layers) for i in range(layers)}
    torch.save({"format": "hessdyn-checkpoint-v1", "step": 0, "model": state, "optimizer": {}}, path)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes-mb", type=float, nargs="+", default=[1, 10, 100])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'checkpoint MB':>14} {'load s':>9} {'crc s':>9} {'crc MB/s':>9} {'crc/load':>9}")
        for mb in args.sizes_mb:
            path = Path(tmp) / f"ckpt_{mb:g}.pt"
            checkpoint(path, mb)
            size = path.stat().st_size / 1e6
            assert zip_problem(path) is None
            load = _best(lambda p=path: torch.load(p, weights_only=True), args.repeats)
            crc = _best(lambda p=path: zip_problem(p), args.repeats)
            print(f"{size:14.1f} {load:9.4f} {crc:9.4f} {size / crc:9.0f} {crc / load:9.2f}")
        spectrum = table("spectrum")
        rows = 20_000
        rng = np.random.default_rng(0)
        frame = pd.DataFrame({c: rng.random(rows) for c in spectrum.names})
        csv = Path(tmp) / "spectrum.csv"
        frame.to_csv(csv, index=False, float_format="%.17g")
        recorded = table_record(csv)
        check = _best(lambda: table_problem(csv, spectrum.names, recorded), args.repeats)
        parse = _best(lambda: table_problem(csv, spectrum.names), args.repeats)
        read = _best(lambda: pd.read_csv(csv), args.repeats)
        size = csv.stat().st_size / 1e6
        print(f"\ntable of {rows} rows ({size:.1f} MB), against pandas.read_csv {read:.4f} s:")
        print(f"  check against the recorded SHA-256 {check:.4f} s, ratio {check / read:.2f}")
        print(f"  check without a record (header, rows) {parse:.4f} s, ratio {parse / read:.2f}")


if __name__ == "__main__":
    main()
