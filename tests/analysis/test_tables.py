"""trajectory.csv and events.csv from saved eigenvector blocks: the one place ranks become 1-based."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from hessdyn.analysis.tables import write_trajectory_tables
from hessdyn.config import schema as s
from hessdyn.store import AnalysisDir
from tests.trajectory.conftest import orthonormal_rows


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
    write_trajectory_tables(adir, [0, 10, 30], s.AnalysisConfig(cluster_rtol=1e-3))

    traj = pd.read_csv(adir.table_path("trajectory"))
    assert list(traj.columns) == ["step_a", "step_b", "metric", "rank", "value"]
    per_rank = traj[traj["rank"].notna()]
    assert sorted(per_rank["rank"].unique()) == [1, 2, 3, 4]
    disp = per_rank[
        (per_rank.metric == "displacement_matched") & (per_rank.step_a == 0) & (per_rank.step_b == 10)
    ]
    np.testing.assert_allclose(disp.value, 0.0, atol=1e-6)  # a permutation is not motion
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
