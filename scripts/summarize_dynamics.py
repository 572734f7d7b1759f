#!/usr/bin/env python
"""Headline numbers of an optimizer-dynamics sweep: displacement and localization of the leading
Hessian eigenvectors, per optimizer, mean ± standard deviation over seeds.

Displacement d = 2(1 − overlap) between consecutive analyzed checkpoints, two ways (trajectory.csv):
plain = Hungarian matching, one vector against its match; cluster = the same matching, but a vector in a
near-degenerate cluster is compared with the cluster's span (a rotation inside it is not motion).
Reads only the tables hessdyn wrote (run.json, analysis/summary.csv, trajectory.csv, spectrum.csv,
nulls.csv). usage: python scripts/summarize_dynamics.py SWEEP_DIR [--ranks 5] [--bands 1-5,6-10,11-20]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from hessdyn.store import RunDir, find_run_dirs

KINDS = {"plain": "matched, plain Hungarian", "cluster": "matched, cluster-aware"}
EARLY_CHECKPOINTS = 6  # Adam's preconditioned sharpness: the first analyzed checkpoints after step 0


def parse_bands(text: str) -> list[tuple[int, int]]:
    """``"1-5,6-10"`` -> ``[(1, 5), (6, 10)]`` (1-based ranks, both ends included)."""
    bands = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        bands.append((int(low), int(high or low)))
    return bands


def _consecutive(traj: pd.DataFrame, steps: list[int]) -> pd.Series:
    pairs = set(zip(steps[:-1], steps[1:], strict=True))
    return traj.apply(lambda r: (r.step_a, r.step_b) in pairs, axis=1)


def displacement_numbers(
    traj: pd.DataFrame, steps: list[int], ranks: int, bands: list[tuple[int, int]]
) -> dict[str, float]:
    """Mean displacement over consecutive pairs: per rank band and kind, the late half for ranks
    1..``ranks``, and rank by rank; NaN for a band the analysis did not compute."""
    pairs = traj[_consecutive(traj, steps)]
    out: dict[str, float] = {}
    for kind in KINDS:
        rows = pairs[pairs.metric == f"displacement_matched_{kind}"]
        for low, high in bands:
            out[f"disp_{kind}_{low}-{high}"] = rows[rows["rank"].between(low, high)].value.mean()
        lead = rows[rows["rank"].le(ranks)]
        out[f"disp_{kind}_late"] = lead[lead.step_a >= steps[len(steps) // 2]].value.mean()
    ranked = pairs[(pairs.metric == "displacement_ranked") & pairs["rank"].le(ranks)]
    out["disp_ranked"] = ranked.value.mean()
    return out


def run_numbers(path: Path, ranks: int, bands: list[tuple[int, int]]) -> dict[str, float] | None:
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
        **displacement_numbers(traj, steps, ranks, bands),
        "overlap_first_last": first_last.value.mean(),
        "ipr_norm_final": top[top.step == steps[-1]].ipr_normalized.mean(),
        "ipr_norm_mean": top.ipr_normalized.mean(),
        "ipr_norm_arch_null": arch[arch["rank"].le(ranks)].ipr_normalized.mean(),
        "lambda_max_final": summary.lambda_max.iloc[-1],
    }


def early_preconditioned(path: Path, optimizer: str) -> pd.DataFrame:
    """Adaptive runs: the preconditioned λmax and its ratio to the threshold at the first checkpoints."""
    summary = pd.read_csv(RunDir(path).analysis().table_path("summary"))
    if "precond_lambda_max" not in summary or not summary.precond_lambda_max.notna().any():
        return pd.DataFrame()
    rows = summary[summary.precond_lambda_max.notna()].head(EARLY_CHECKPOINTS)
    return pd.DataFrame(
        {
            "optimizer": optimizer,
            "step": rows.step,
            "precond_lambda_max": rows.precond_lambda_max,
            "ratio_to_threshold": rows.precond_lambda_max / rows.precond_threshold,
        }
    )


def _mean_sd(values: pd.Series) -> str:
    return f"{values.mean():.3g} ± {values.std():.2g}"


def print_per_optimizer(table: pd.DataFrame, ranks: int, bands: list[tuple[int, int]]) -> None:
    print("\nper optimizer, mean ± std over seeds:")
    for opt, part in table.groupby("optimizer"):
        print(f"  {opt} (n={len(part)}, final train loss {_mean_sd(part.final_train_loss)}):")
        for kind, label in KINDS.items():
            cells = [f"ranks {lo}-{hi} {_mean_sd(part[f'disp_{kind}_{lo}-{hi}'])}" for lo, hi in bands]
            late = _mean_sd(part[f"disp_{kind}_late"])
            print(f"    displacement, {label}: " + "; ".join(cells) + f"; ranks 1-{ranks}, late half {late}")
        print(f"    displacement, rank by rank, ranks 1-{ranks}: {_mean_sd(part.disp_ranked)}")
        print(f"    overlap of the first and last top-{ranks} spaces: {_mean_sd(part.overlap_first_last)}")
        print(
            f"    normalized IPR, ranks 1-{ranks}: final {_mean_sd(part.ipr_norm_final)}, mean over checkpoints "
            f"{_mean_sd(part.ipr_norm_mean)}, architecture null {_mean_sd(part.ipr_norm_arch_null)}"
        )
        print(f"    λmax at the end: {_mean_sd(part.lambda_max_final)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--ranks", type=int, default=5, help="leading eigenvectors averaged (1..ranks)")
    parser.add_argument("--bands", default="1-5,6-10,11-20", help="rank bands of the displacement")
    args = parser.parse_args()
    bands = parse_bands(args.bands)
    runs = find_run_dirs(args.sweep_dir)
    numbers = {run: run_numbers(run, args.ranks, bands) for run in runs}
    rows = [r for r in numbers.values() if r is not None]
    if not rows:
        print(f"no analyzed runs under {args.sweep_dir}; run hessdyn analyze first", file=sys.stderr)
        return 1
    table = pd.DataFrame(rows).sort_values(["optimizer", "seed"])
    pd.set_option("display.width", 250)
    print(
        "per run (displacement d = 2(1 - overlap) between consecutive checkpoints, mean over the ranks named; "
        "plain = Hungarian matching, cluster = cluster-aware; IPR normalized so a random unit vector gives 1):"
    )
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print_per_optimizer(table, args.ranks, bands)
    early = pd.concat(
        [early_preconditioned(run, str(r["optimizer"])) for run, r in numbers.items() if r is not None]
    )
    if not early.empty:
        print(
            "\nadaptive optimizers, first checkpoints: preconditioned λmax (bias-corrected P_t, units 1/η) and its "
            "ratio to the threshold (2+2β1)/((1−β1)η), mean ± std over seeds:"
        )
        for (opt, step), part in early.groupby(["optimizer", "step"]):
            print(
                f"  {opt} step {step:g}: {_mean_sd(part.precond_lambda_max)}  ratio "
                f"{_mean_sd(part.ratio_to_threshold)}  (n={len(part)})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
