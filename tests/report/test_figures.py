"""Figure functions: one color per group everywhere, optional log step axis, None without data, bands
only where they can be read, reference lines where a number needs one."""

from __future__ import annotations

import matplotlib.colors as mcolors
import numpy as np
import pytest
from matplotlib.collections import PolyCollection

from hessdyn.report.bands import LOG_FLOOR
from hessdyn.report.figures import FIGURES
from hessdyn.report.figures.curvature import eigenvalues_figure, stability_figure
from hessdyn.report.figures.localization import ipr_figure
from hessdyn.report.figures.training import loss_figure
from hessdyn.report.figures.trajectory import alignment_figure, events_figure
from hessdyn.report.runs import discover_runs
from hessdyn.report.style import FigureOptions, group_colors
from hessdyn.report.tables import load_tables

from .fake_runs import NUM_PARAMS, STEPS, TOP_K, crossings_at, opt_index


@pytest.fixture(scope="module")
def tables(clean_sweep):
    return load_tables(discover_runs(str(clean_sweep), [], "optimizer"))


def _options(log_x: bool = False) -> FigureOptions:
    groups = ("adam", "sgd")
    return FigureOptions(groups=groups, colors=group_colors(groups), log_x=log_x)


def test_a_group_has_one_color_in_every_figure(tables) -> None:
    options = _options()
    loss = loss_figure(tables, options)
    eig = eigenvalues_figure(tables, options)
    for group in ("adam", "sgd"):
        color = mcolors.to_hex(options.colors[group])
        (line,) = [ln for ln in loss.figure.axes[0].get_lines() if ln.get_label() == group]
        assert mcolors.to_hex(line.get_color()) == color
        (panel,) = [ax for ax in eig.figure.axes if ax.get_title() == group]
        assert mcolors.to_hex(panel.title.get_color()) == color
        rank1 = [ln for ln in panel.get_lines() if ln.get_label() == "λ1"]
        assert mcolors.to_hex(rank1[0].get_color()) == color
    assert options.colors["adam"] != options.colors["sgd"]


def test_log_x_gives_a_symlog_step_axis(tables) -> None:
    linear = loss_figure(tables, _options(log_x=False)).figure.axes[0]
    log = loss_figure(tables, _options(log_x=True)).figure.axes[0]
    assert linear.get_xscale() == "linear"
    assert log.get_xscale() == "symlog" and "symlog" in log.get_xlabel()


def test_axes_are_labelled(tables) -> None:
    loss = loss_figure(tables, _options()).figure.axes[0]
    assert "nats" in loss.get_ylabel() and "step" in loss.get_xlabel()


def test_no_data_gives_no_figure(tmp_path) -> None:
    empty = load_tables([])
    for spec in FIGURES:
        assert spec.draw(empty, _options()) is None, spec.name


def _bands(ax) -> list[PolyCollection]:
    return [c for c in ax.collections if isinstance(c, PolyCollection)]


def test_multi_rank_panels_band_only_the_leading_rank(tables) -> None:
    for draw in (eigenvalues_figure, ipr_figure):
        result = draw(tables, _options())
        for ax in result.figure.axes:
            assert len(_bands(ax)) == 1, (result.name, ax.get_title())
        assert "only" in result.caption


def test_log_axis_band_stops_one_decade_below_the_mean(tables) -> None:
    result = eigenvalues_figure(tables, _options())
    ax = result.figure.axes[0]
    assert ax.get_yscale() == "log"
    lowest = min(p.vertices[:, 1].min() for band in _bands(ax) for p in band.get_paths())
    rank1 = result.data[(result.data["metric"] == "eigenvalue") & (result.data["rank"] == 1)]
    assert lowest >= LOG_FLOOR * rank1["mean"].min() - 1e-12


def test_stability_ratio_is_on_a_log_axis_with_the_edge_at_one(tables) -> None:
    result = stability_figure(tables, _options())
    ratio = result.figure.axes[1]
    assert ratio.get_yscale() == "log"
    assert any(list(line.get_ydata()) == [1.0, 1.0] for line in ratio.get_lines())


def test_alignment_shows_the_random_baseline_k_over_p(tables) -> None:
    result = alignment_figure(tables, _options())
    baseline = result.data[result.data["metric"] == "random_alignment"]
    assert sorted(baseline["group"]) == ["adam", "sgd"]
    assert baseline["mean"].tolist() == pytest.approx([TOP_K / NUM_PARAMS] * 2)
    for ax in result.figure.axes:
        ys = [line.get_ydata()[0] for line in ax.get_lines() if len(line.get_ydata()) == 2]
        assert any(y == pytest.approx(TOP_K / NUM_PARAMS) for y in ys)
    assert "k/P" in result.caption


def test_events_figure_counts_crossings_per_consecutive_pair(tables) -> None:
    result = events_figure(tables, _options())
    crossings = result.data[(result.data["metric"] == "crossings") & (result.data["group"] == "sgd")]
    for i, (a, b) in enumerate(zip(STEPS[:-1], STEPS[1:], strict=True)):
        row = crossings[(crossings["step_a"] == a) & (crossings["step_b"] == b)].iloc[0]
        expected = np.mean([crossings_at(i, opt_index("sgd"), seed) for seed in (0, 1)])
        assert row["mean"] == expected and row["n"] == 2
    assert (result.data["band_lo"].dropna() >= 0).all()
