"""trajectory.csv and events.csv from saved eigenvector blocks: the one place ranks become 1-based."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from hessdyn.analysis.tables import write_trajectory_tables
from hessdyn.config import schema as s
from hessdyn.store import AnalysisDir, metric
from tests.trajectory.conftest import orthonormal_rows, rotate_pair


def _save(adir: AnalysisDir, step: int, vectors: torch.Tensor, values: list[float]) -> None:
    adir.save_vectors(
        step, {"step": step, "eigenvectors": vectors.float(), "eigenvalues": torch.tensor(values)}
    )
    adir.write_step_record(step, {"summary": [{"step": step}]})


def test_trajectory_and_events_rows_with_one_based_ranks(tmp_path):
    adir = AnalysisDir(tmp_path)
    block = orthonormal_rows(4, 30, seed=3)
    distinct = [8.0, 4.0, 2.0, 1.0]
    _save(adir, 0, block, distinct)
    _save(adir, 10, block[[2, 0, 1, 3]], distinct)  # rank r at step 10 holds the vector of rank perm[r] at 0
    degenerate = [8.0, 4.0, 1.0, 1.0]  # ranks 3, 4 form a cluster at step 30
    c, s_ = math.cos(0.6), math.sin(0.6)
    later = block[[2, 0, 1, 3]].clone()
    later[2], later[3] = c * block[1] + s_ * block[3], -s_ * block[1] + c * block[3]
    _save(adir, 30, later, degenerate)
    write_trajectory_tables(adir, [0, 10, 30], s.AnalysisConfig())

    traj = pd.read_csv(adir.table_path("trajectory"))
    assert list(traj.columns) == ["step_a", "step_b", "metric", "rank", "value"]
    per_rank = traj[traj["rank"].notna()]
    assert sorted(per_rank["rank"].unique()) == [1, 2, 3, 4]
    disp = per_rank[
        (per_rank.metric == "displacement_matched_plain") & (per_rank.step_a == 0) & (per_rank.step_b == 10)
    ]
    np.testing.assert_allclose(disp.value, 0.0, atol=1e-6)  # a permutation is not motion
    inside = per_rank[(per_rank.step_a == 10) & (per_rank.step_b == 30) & per_rank["rank"].isin([3, 4])]
    plain = inside[inside.metric == "displacement_matched_plain"].value
    cluster = inside[inside.metric == "displacement_matched_cluster"].value
    assert (
        len(plain) == len(cluster) == 2 and (plain > 0.1).all()
    )  # a rotation by 0.6 rad inside the degenerate pair ...
    np.testing.assert_allclose(cluster, 0.0, atol=1e-6)  # ... is not motion for the cluster-aware one
    ranked = per_rank[(per_rank.metric == "displacement_ranked") & (per_rank.step_b == 10)]
    np.testing.assert_allclose(ranked.sort_values("rank").value, [2, 2, 2, 0], atol=1e-6)
    pairs = traj[traj.metric == "subspace_overlap"][["step_a", "step_b"]].apply(tuple, axis=1).tolist()
    assert pairs == [(0, 10), (0, 30), (10, 30)]  # every pair, rank empty

    events = pd.read_csv(adir.table_path("events"))
    assert list(events.columns) == ["step_a", "step_b", "kind", "rank_a", "rank_b", "detail"]
    crossings = events[events.kind == "crossing"]
    assert set(zip(crossings.step_a, crossings.rank_a, crossings.rank_b, strict=True)) == {
        (0, 1, 2),
        (0, 2, 3),
        (0, 3, 1),
    }
    (cluster,) = events[events.kind == "cluster"].itertuples()
    assert (cluster.step_a, cluster.step_b, cluster.rank_a, cluster.rank_b) == (10, 30, 3, 3)
    assert cluster.detail.startswith("ranks_a=3+4 ranks_b=3+4 subspace_overlap=")
    assert float(cluster.detail.rsplit("=", 1)[1]) == pytest.approx(1.0, abs=1e-5)


def _per_rank(traj: pd.DataFrame, metric_name: str, a: int, b: int) -> np.ndarray:
    rows = traj[(traj.metric == metric_name) & (traj.step_a == a) & (traj.step_b == b)]
    return rows.sort_values("rank").value.to_numpy()


def test_a_ladder_of_close_eigenvalues_is_not_one_cluster(tmp_path):
    """Eigenvalues 0.5% apart are distinct at the default cluster_rtol (1e-3, relative to the neighbour):
    a vector that rotates along such a ladder moves, plain and cluster-aware alike. The former rule (an
    absolute gap of 1e-2·λmax, chained) made ranks 2–5 one cluster and this motion 0."""
    adir = AnalysisDir(tmp_path)
    block = orthonormal_rows(5, 40, seed=1)
    ladder = [20.0, 10.0, 9.95, 9.90, 9.85]
    _save(adir, 0, block, ladder)
    _save(adir, 10, rotate_pair(rotate_pair(block, 1, 2, 0.5), 3, 4, 0.3), ladder)
    write_trajectory_tables(adir, [0, 10], s.AnalysisConfig())
    traj = pd.read_csv(adir.table_path("trajectory"))
    plain = _per_rank(traj, "displacement_matched_plain", 0, 10)
    cluster = _per_rank(traj, "displacement_matched_cluster", 0, 10)
    expected = 2 * (1 - np.cos([0.0, 0.5, 0.5, 0.3, 0.3]))
    np.testing.assert_allclose(plain, expected, atol=1e-6)
    np.testing.assert_allclose(cluster, expected, atol=1e-6)
    assert (pd.read_csv(adir.table_path("events")).kind != "cluster").all()


def test_every_displacement_is_two_one_minus_the_overlap_written_beside_it(tmp_path):
    """Per rank, each of the plain, cluster-aware and rank-by-rank displacements is 2(1 − o) of its own
    overlap; the two-time means are the means of the per-rank overlaps; every metric is registered."""
    adir = AnalysisDir(tmp_path)
    base = orthonormal_rows(4, 30, seed=5)
    values = [5.0, 3.0, 3.0, 1.0]  # ranks 2, 3 degenerate
    _save(adir, 0, base, values)
    moved = rotate_pair(rotate_pair(base, 1, 2, 0.7), 0, 3, 0.2)[[0, 2, 1, 3]]
    _save(adir, 7, moved, values)
    write_trajectory_tables(adir, [0, 7], s.AnalysisConfig())
    traj = pd.read_csv(adir.table_path("trajectory"))
    assert all(metric(name) is not None for name in traj.metric.unique())
    for kind in ("matched_plain", "matched_cluster", "ranked"):
        overlap = _per_rank(traj, f"overlap_{kind}", 0, 7)
        np.testing.assert_allclose(
            _per_rank(traj, f"displacement_{kind}", 0, 7), 2 * (1 - overlap), atol=1e-12
        )
    plain = _per_rank(traj, "overlap_matched_plain", 0, 7)
    cluster = _per_rank(traj, "overlap_matched_cluster", 0, 7)
    assert (cluster >= plain - 1e-12).all()
    np.testing.assert_allclose(cluster[1:3], 1.0, atol=1e-6)  # the degenerate pair's span did not move
    assert plain[1] < 0.95
    for kind, per_rank in (("plain", plain), ("cluster", cluster)):
        (mean,) = traj[traj.metric == f"mean_matched_overlap_{kind}"].value
        assert mean == pytest.approx(per_rank.mean(), abs=1e-12)
