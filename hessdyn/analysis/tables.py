"""The analysis tables on disk, rebuilt from per-checkpoint records and eigenvector files.

Columns are documented in docs/design.md; every file is a long/tidy CSV.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from hessdyn.config import schema as s
from hessdyn.io import atomic_write_text, safe_torch_load
from hessdyn.trajectory import compare_subspaces, match_eigenvectors

STEP_TABLES = ("spectrum", "layer_mass", "summary", "top_params", "density")

# Leading columns of each step table, in this order; any further columns follow alphabetically.
STEP_COLUMNS = {
    "spectrum": [
        "step",
        "which",
        "rank",
        "eigenvalue",
        "residual",
        "rel_residual",
        "converged",
        "ipr",
        "ipr_normalized",
        "count_50",
        "count_90",
    ],
    "layer_mass": ["step", "rank", "param", "mass"],
    "summary": [
        "step",
        "epoch",
        "lambda_max",
        "lambda_min",
        "trace",
        "trace_se",
        "trace_sq",
        "trace_sq_se",
        "ws_bound",
        "ws_bound_se",
        "ws_lower",
        "lambda_max_over_ws",
        "loss",
        "grad_norm",
        "lr",
        "sharpness_lr",
        "stability_threshold",
        "precond_lambda_max",
        "precond_threshold",
        "grad_alignment",
        "update_alignment",
        "hvps",
        "wall_s",
        "n_converged",
    ],
    "top_params": ["step", "rank", "position", "index", "param", "entry", "value", "mass"],
    "density": ["step", "eigenvalue", "density"],
}
TRAJECTORY_COLUMNS = ["step_a", "step_b", "metric", "rank", "value"]
EVENT_COLUMNS = ["step_a", "step_b", "kind", "rank_a", "rank_b", "detail"]


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    atomic_write_text(path, frame.to_csv(index=False, float_format="%.17g"))


def write_step_tables(out_dir: Path, steps: list[int]) -> None:
    """Concatenate the per-checkpoint records of ``steps`` (those done) into the step tables."""
    records: dict[str, list[dict[str, Any]]] = {name: [] for name in STEP_TABLES}
    for st in steps:
        path = out_dir / "steps" / f"step_{st:08d}.json"
        if not path.exists():
            continue
        rows = json.loads(path.read_text())
        for name in STEP_TABLES:
            records[name].extend(rows.get(name, []))
    for name, rows in records.items():
        if rows or name in ("spectrum", "summary"):
            frame = pd.DataFrame(rows)
            lead = [c for c in STEP_COLUMNS[name] if c in frame.columns]
            frame = frame[lead + sorted(c for c in frame.columns if c not in lead)]
            write_csv(out_dir / f"{name}.csv", frame)
        elif (out_dir / f"{name}.csv").exists():
            (out_dir / f"{name}.csv").unlink()


def _cluster_atol(eigenvalues: torch.Tensor, settings: s.AnalysisConfig) -> float:
    return settings.cluster_rtol * float(eigenvalues.abs().max()) if eigenvalues.numel() else 0.0


def write_trajectory_tables(out_dir: Path, steps: list[int], settings: s.AnalysisConfig) -> None:
    """trajectory.csv and events.csv from the saved eigenvector blocks of the analyzed ``steps``.

    Per-rank metrics (matched and rank-by-rank displacement, matched overlap) for consecutive checkpoints and
    for every checkpoint against the first and the last; subspace metrics for every pair (the two-time form).
    """
    done = [
        st
        for st in steps
        if (out_dir / "eigvecs" / f"step_{st:08d}.pt").exists()
        and (out_dir / "steps" / f"step_{st:08d}.json").exists()
    ]
    blocks: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    for st in done:
        saved = safe_torch_load(out_dir / "eigvecs" / f"step_{st:08d}.pt")
        blocks[st] = (saved["eigenvectors"], saved["eigenvalues"])
    rows: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    per_rank_pairs: set[tuple[int, int]] = set()
    if len(done) >= 2:
        per_rank_pairs |= set(zip(done[:-1], done[1:], strict=True))
        per_rank_pairs |= {(done[0], st) for st in done[1:]}
        per_rank_pairs |= {(st, done[-1]) for st in done[:-1]}
    for i, a in enumerate(done):
        for b in done[i + 1 :]:
            Va, la = blocks[a]
            Vb, lb = blocks[b]
            sub = compare_subspaces(Va, Vb)
            match = match_eigenvectors(
                Va,
                Vb,
                la,
                lb,
                cluster_rtol=0.0,
                cluster_atol=max(_cluster_atol(la, settings), _cluster_atol(lb, settings)),
            )
            rows.append(
                {"step_a": a, "step_b": b, "metric": "subspace_overlap", "rank": None, "value": sub.overlap}
            )
            rows.append(
                {
                    "step_a": a,
                    "step_b": b,
                    "metric": "grassmann_distance",
                    "rank": None,
                    "value": sub.grassmann_distance,
                }
            )
            rows.append(
                {
                    "step_a": a,
                    "step_b": b,
                    "metric": "mean_matched_overlap",
                    "rank": None,
                    "value": float(match.mean_matched_overlap),
                }
            )
            if (a, b) not in per_rank_pairs:
                continue
            for r in range(match.matched.shape[0]):
                rank = r + 1
                rows.append(
                    {
                        "step_a": a,
                        "step_b": b,
                        "metric": "displacement_matched",
                        "rank": rank,
                        "value": float(match.displacements[r]),
                    }
                )
                rows.append(
                    {
                        "step_a": a,
                        "step_b": b,
                        "metric": "overlap_matched",
                        "rank": rank,
                        "value": float(match.overlaps[r]),
                    }
                )
                if r < match.rank_displacements.shape[0]:
                    rows.append(
                        {
                            "step_a": a,
                            "step_b": b,
                            "metric": "displacement_ranked",
                            "rank": rank,
                            "value": float(match.rank_displacements[r]),
                        }
                    )
            if (a, b) in set(zip(done[:-1], done[1:], strict=True)):
                for c in match.crossings:
                    events.append(
                        {
                            "step_a": a,
                            "step_b": b,
                            "kind": "crossing",
                            "rank_a": c.rank_a + 1,
                            "rank_b": c.rank_b + 1,
                            "detail": f"overlap={c.overlap:.6g}",
                        }
                    )
                for g in match.cluster_groups:
                    events.append(
                        {
                            "step_a": a,
                            "step_b": b,
                            "kind": "cluster",
                            "rank_a": min(g.ranks_a) + 1 if len(g.ranks_a) else math.nan,
                            "rank_b": min(g.ranks_b) + 1 if len(g.ranks_b) else math.nan,
                            "detail": "ranks_a="
                            + "+".join(str(x + 1) for x in g.ranks_a)
                            + " ranks_b="
                            + "+".join(str(x + 1) for x in g.ranks_b)
                            + f" subspace_overlap={g.subspace_overlap:.6g}",
                        }
                    )
    frame = pd.DataFrame(rows, columns=TRAJECTORY_COLUMNS)
    frame["rank"] = frame["rank"].astype("Int64")
    write_csv(out_dir / "trajectory.csv", frame)
    write_csv(out_dir / "events.csv", pd.DataFrame(events, columns=EVENT_COLUMNS))
