"""The analysis tables on disk, rebuilt from per-checkpoint records and eigenvector files.

Columns, units and order are registered in :mod:`hessdyn.store.registry` (and listed in docs/design.md);
every file is a long/tidy CSV. Ranks are 1-based: the trajectory package's 0-based indices become ranks
here, the one place that turns its results into rows.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from hessdyn.config import schema as s
from hessdyn.store import AnalysisDir, tables
from hessdyn.trajectory import EigenvectorMatch, MatchedGroup, compare_subspaces, match_eigenvectors

Row = dict[str, Any]


def write_step_tables(adir: AnalysisDir, steps: list[int]) -> None:
    """Concatenate the per-checkpoint records of ``steps`` (those done) into the step tables; a table with
    no rows is removed, unless it is written always."""
    step_tables = tables(folder="analysis", per="step")
    records: dict[str, list[Row]] = {t.name: [] for t in step_tables}
    for st in steps:
        rows = adir.read_step_record(st)
        if rows is None:
            continue
        for name, table_rows in records.items():
            table_rows.extend(rows.get(name, []))
    for t in step_tables:
        if records[t.name] or t.always:
            adir.write_table(t.name, records[t.name])
        else:
            adir.remove_table(t.name)


def _pair_row(a: int, b: int, metric: str, value: float, rank: int | None = None) -> Row:
    return {"step_a": a, "step_b": b, "metric": metric, "rank": rank, "value": value}


def _per_rank_rows(a: int, b: int, match: EigenvectorMatch) -> list[Row]:
    """Per rank at ``a``, each displacement beside the overlap it is ``2(1 − ·)`` of: plain Hungarian
    matched, cluster-aware matched and rank by rank (see :mod:`hessdyn.trajectory.matching`)."""
    rows = []
    for r in range(match.matched.shape[0]):
        for metric, values in (
            ("overlap_matched_plain", match.plain_overlaps),
            ("displacement_matched_plain", match.plain_displacements),
            ("overlap_matched_cluster", match.cluster_overlaps),
            ("displacement_matched_cluster", match.cluster_displacements),
            ("overlap_ranked", match.rank_overlaps),
            ("displacement_ranked", match.rank_displacements),
        ):
            if r < values.shape[0]:
                rows.append(_pair_row(a, b, metric, float(values[r]), r + 1))
    return rows


def _ranks(ranks: tuple[int, ...]) -> str:
    return "+".join(str(x + 1) for x in ranks)


def _first_rank(ranks: tuple[int, ...]) -> float:
    return min(ranks) + 1 if len(ranks) else math.nan


def _cluster_event(a: int, b: int, g: MatchedGroup) -> Row:
    return {
        "step_a": a,
        "step_b": b,
        "kind": "cluster",
        "rank_a": _first_rank(g.ranks_a),
        "rank_b": _first_rank(g.ranks_b),
        "detail": f"ranks_a={_ranks(g.ranks_a)} ranks_b={_ranks(g.ranks_b)} subspace_overlap={g.subspace_overlap:.6g}",
    }


def _events(a: int, b: int, match: EigenvectorMatch) -> list[Row]:
    """events.csv rows of a consecutive pair: crossings, then degenerate-cluster groups."""
    rows: list[Row] = [
        {
            "step_a": a,
            "step_b": b,
            "kind": "crossing",
            "rank_a": c.rank_a + 1,
            "rank_b": c.rank_b + 1,
            "detail": f"overlap={c.overlap:.6g}",
        }
        for c in match.crossings
    ]
    return rows + [_cluster_event(a, b, g) for g in match.cluster_groups]


def write_trajectory_tables(adir: AnalysisDir, steps: list[int], settings: s.AnalysisConfig) -> None:
    """trajectory.csv and events.csv from the saved eigenvector blocks of the analyzed ``steps``.

    Per-rank metrics (plain and cluster-aware matched and rank-by-rank overlap and displacement) for
    consecutive checkpoints and for every checkpoint against the first and the last; subspace metrics and
    the mean matched overlaps for every pair (the two-time form). Degenerate clusters are those of
    :func:`~hessdyn.trajectory.degenerate_clusters` with ``rtol = settings.cluster_rtol``: relative gap to
    the neighbour and the cluster's spread, no absolute term.
    """
    done = adir.analyzed(steps)
    blocks: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    for st in done:
        saved = adir.load_vectors(st)
        blocks[st] = (saved["eigenvectors"], saved["eigenvalues"])
    consecutive = set(zip(done[:-1], done[1:], strict=True))
    per_rank = consecutive | {(done[0], st) for st in done[1:]} | {(st, done[-1]) for st in done[:-1]}
    rows: list[Row] = []
    events: list[Row] = []
    for i, a in enumerate(done):
        for b in done[i + 1 :]:
            (Va, la), (Vb, lb) = blocks[a], blocks[b]
            sub = compare_subspaces(Va, Vb)
            match = match_eigenvectors(Va, Vb, la, lb, cluster_rtol=settings.cluster_rtol, cluster_atol=0.0)
            rows.append(_pair_row(a, b, "subspace_overlap", sub.overlap))
            rows.append(_pair_row(a, b, "grassmann_distance", sub.grassmann_distance))
            rows.append(_pair_row(a, b, "mean_matched_overlap_plain", match.mean_plain_overlap))
            rows.append(_pair_row(a, b, "mean_matched_overlap_cluster", match.mean_cluster_overlap))
            if (a, b) in per_rank:
                rows.extend(_per_rank_rows(a, b, match))
            if (a, b) in consecutive:
                events.extend(_events(a, b, match))
    adir.write_table("trajectory", rows, all_columns=True)
    adir.write_table("events", events, all_columns=True)
