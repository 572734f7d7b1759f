"""The table registry: one column order, one domain per metric, ranks 1-based, unknown columns refused."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from hessdyn.config import schema as s
from hessdyn.store import (
    DISPLACEMENT,
    FRACTION,
    NON_NEGATIVE,
    POSITIVE,
    UNBOUNDED,
    Column,
    Table,
    domain,
    register_metrics,
    table,
    table_frame,
    tables,
    text_columns,
    write_table,
)


def test_every_table_belongs_to_a_real_metric_group_and_folder():
    groups = {g.value for g in s.MetricGroup}
    for t in tables():
        assert t.group is None or t.group in groups, t.name
        assert t.folder in ("metrics", "analysis")
        assert t.names[0] in ("step", "step_a", "null"), f"{t.name}: tidy tables lead with their key"
    assert [t.name for t in tables(folder="metrics")] == ["train", "sharpness"]
    assert {t.name for t in tables(folder="analysis", per="step")} == {
        "spectrum",
        "layer_mass",
        "summary",
        "top_params",
        "density",
        "noise",
        "noise_spectrum",
        "noise_gamma",
    }


def test_rank_columns_are_declared_one_based():
    for name in ("spectrum", "layer_mass", "top_params", "trajectory", "nulls"):
        assert table(name).column("rank").kind == "rank"
    assert table("events").column("rank_a").kind == table("events").column("rank_b").kind == "rank"


def test_domains_of_the_metrics_a_report_draws():
    assert domain("accuracy") == FRACTION and domain("final_test_accuracy") == FRACTION
    assert domain("mass") == FRACTION and domain("subspace_overlap") == FRACTION
    for kind in ("matched_plain", "matched_cluster", "ranked"):
        assert domain(f"displacement_{kind}") == DISPLACEMENT and domain(f"overlap_{kind}") == FRACTION
    assert domain("mean_displacement_plain") == domain("mean_displacement_cluster") == DISPLACEMENT
    assert domain("mean_matched_overlap_plain") == domain("mean_matched_overlap_cluster") == FRACTION
    assert domain("displacement_matched") == UNBOUNDED  # the old, ambiguous name is retired
    assert domain("density") == NON_NEGATIVE and domain("crossings") == NON_NEGATIVE
    assert domain("eigenvalue") == POSITIVE and domain("stability_ratio") == POSITIVE
    assert domain("lambda_min") == UNBOUNDED and domain("no_such_metric") == UNBOUNDED
    assert POSITIVE.positive and math.isinf(POSITIVE.low)


def test_one_metric_name_cannot_get_two_domains():
    with pytest.raises(ValueError, match="metric 'accuracy' has domain"):
        register_metrics(Column("accuracy", "1", "a second definition", domain=NON_NEGATIVE))
    with pytest.raises(ValueError, match="duplicate columns"):
        Table("x", "analysis", "doc", (Column("a", "", ""), Column("a", "", "")))


def test_table_frame_orders_columns_and_refuses_what_is_not_registered():
    rows = [
        {"mass": 0.5, "param": "w", "rank": 1, "step": 3},
        {"mass": 0.5, "param": "b", "rank": 2, "step": 3},
    ]
    frame = table_frame(table("layer_mass"), rows)
    assert list(frame.columns) == ["step", "rank", "param", "mass"]
    assert str(frame["rank"].dtype) == "Int64"
    with pytest.raises(ValueError, match=r"columns \['massive'\] are not registered"):
        table_frame(table("layer_mass"), [{"step": 0, "massive": 1.0}])
    with pytest.raises(ValueError, match="ranks below 1"):
        table_frame(table("layer_mass"), [{"step": 0, "rank": 0, "param": "w", "mass": 1.0}])
    full = table_frame(table("events"), [], all_columns=True)
    assert list(full.columns) == ["step_a", "step_b", "kind", "rank_a", "rank_b", "detail"] and full.empty


def test_written_table_round_trips_floats_and_keeps_empty_ranks_empty(tmp_path):
    path = tmp_path / "trajectory.csv"
    value = 1 / 3
    rows = [
        {"step_a": 0, "step_b": 5, "metric": "subspace_overlap", "rank": None, "value": value},
        {"step_a": 0, "step_b": 5, "metric": "displacement_matched_plain", "rank": 2, "value": 2 * value},
    ]
    write_table(path, table("trajectory"), rows, all_columns=True)
    lines = path.read_text().splitlines()
    assert lines[0] == "step_a,step_b,metric,rank,value"
    assert lines[1].startswith("0,5,subspace_overlap,,") and lines[2].startswith(
        "0,5,displacement_matched_plain,2,"
    )
    back = pd.read_csv(path)
    assert back["value"].tolist() == [value, 2 * value]  # 17 significant digits: exact round trip


def test_text_columns_are_the_registered_text_and_flag_columns():
    text = text_columns()
    assert {"split", "source", "which", "metric", "param", "null", "kind", "detail", "converged"} <= text
    assert "step" not in text and "eigenvalue" not in text
