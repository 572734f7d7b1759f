#!/usr/bin/env python
"""Headline numbers of an optimizer-dynamics sweep: displacement and localization of the leading
Hessian eigenvectors, per optimizer, mean ± standard deviation over seeds.

Reads only the tables hessdyn wrote (run.json, analysis/summary.csv, trajectory.csv, spectrum.csv,
nulls.csv). usage: python scripts/summarize_dynamics.py SWEEP_DIR [--ranks 5]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from hessdyn.store import RunDir, find_run_dirs


def run_numbers(path: Path, ranks: int) -> dict[str, float] | None:
    run = RunDir(path)
    record = run.read_record()
    folder = run.analysis()
    if record is None or not folder.has_table("trajectory"):
        return None
    traj = pd.read_csv(folder.table_path("trajectory"))
    spec = pd.read_csv(folder.table_path("spectrum"))
    nulls = pd.read_csv(folder.table_path("nulls"))
    summary = pd.read_csv(folder.table_path("summary"))
    steps = sorted(summary.step)
    consecutive = set(zip(steps[:-1], steps[1:], strict=True))
    pairs = traj.apply(lambda r: (r.step_a, r.step_b) in consecutive, axis=1)
    lead = traj["rank"].le(ranks)
    disp = traj[pairs & lead & (traj.metric == "displacement_matched")]
    late = disp[disp.step_a >= steps[len(steps) // 2]]
    ranked = traj[pairs & lead & (traj.metric == "displacement_ranked")]
    first_last = traj[
        (traj.metric == "subspace_overlap") & (traj.step_a == steps[0]) & (traj.step_b == steps[-1])
    ]
    top = spec[(spec.which == "top") & spec["rank"].le(ranks)]
    arch = nulls[nulls.null == "architecture"]
    return {
        "optimizer": record["config"]["optimizer"]["name"],
        "seed": record["config"]["seed"],
        "status": record["status"],
        "final_step": steps[-1],
        "final_train_loss": record.get("final_train_loss", np.nan),
        "disp_matched": disp.value.mean(),
        "disp_matched_late": late.value.mean(),
        "disp_ranked": ranked.value.mean(),
        "overlap_first_last": first_last.value.mean(),
        "ipr_norm_final": top[top.step == steps[-1]].ipr_normalized.mean(),
        "ipr_norm_mean": top.ipr_normalized.mean(),
        "ipr_norm_arch_null": arch[arch["rank"].le(ranks)].ipr_normalized.mean(),
        "lambda_max_final": summary.lambda_max.iloc[-1],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--ranks", type=int, default=5, help="leading eigenvectors averaged (1..ranks)")
    args = parser.parse_args()
    runs = find_run_dirs(args.sweep_dir)
    rows = [r for r in (run_numbers(run, args.ranks) for run in runs) if r is not None]
    if not rows:
        print(f"no analyzed runs under {args.sweep_dir}; run hessdyn analyze first", file=sys.stderr)
        return 1
    table = pd.DataFrame(rows).sort_values(["optimizer", "seed"])
    pd.set_option("display.width", 200)
    print(
        f"per run (leading ranks 1..{args.ranks}; displacement d = 2(1-|<v(t),v(t')>|) between consecutive "
        "checkpoints, matched by overlap; IPR normalized so a random unit vector gives 1):"
    )
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    cols = [
        "final_train_loss",
        "disp_matched",
        "disp_matched_late",
        "disp_ranked",
        "overlap_first_last",
        "ipr_norm_final",
        "ipr_norm_mean",
        "ipr_norm_arch_null",
        "lambda_max_final",
    ]
    agg = table.groupby("optimizer")[cols].agg(["mean", "std", "count"])
    print("\nper optimizer, mean ± std over seeds:")
    for opt, row in agg.iterrows():
        parts = [f"{c}={row[(c, 'mean')]:.4g}±{row[(c, 'std')]:.2g}" for c in cols]
        print(f"  {opt} (n={int(row[(cols[0], 'count')])}): " + "  ".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
