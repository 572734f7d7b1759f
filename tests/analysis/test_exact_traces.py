"""hessdyn analyze on three_layer runs: summary.csv's exact traces and WS bound (closed form) against the
dense spectrum of the same objective, and beside the Hutch++ estimates; other models leave them empty."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hessdyn.analysis.runner import analyze_run
from hessdyn.training.loop import train
from tests.training.helpers import typed_config

TRAIN = [
    "model=three_layer",
    "model.hidden=10",
    "model.activation=tanh",
    "dataset.n_train=300",
    "dataset.n_test=60",
    "trainer.max_steps=30",
    "trainer.batch_size=50",
    "checkpoint.schedule=list",
    "checkpoint.steps=[10]",
    "optimizer.weight_decay=0.01",
]
EXACT = ["trace_exact", "trace_sq_exact", "ws_bound_exact", "ws_lower_exact", "lambda_max_over_ws_exact"]


def _analyze(run: Path, extra: list[str]) -> pd.DataFrame:
    settings = typed_config(
        ["analysis.top_k=3", "analysis.bottom_k=0", "analysis.hessian_set=120", "analysis.tol=1e-8", *extra],
        config_name="analyze",
    ).analysis
    out = analyze_run(run, settings, progress=False)
    return pd.read_csv(out.out_dir / "summary.csv").set_index("step")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("three_layer") / "run"
    train(typed_config([*TRAIN, "regularizer=hsr", "regularizer.beta=0.05"]), path)
    return path


@pytest.mark.parametrize("decay", [False, True], ids=["data-loss", "with-weight-decay"])
def test_exact_columns_equal_the_dense_spectrum_of_the_same_objective(run: Path, decay: bool) -> None:
    extra = ["analysis.metrics=[spectrum,trace]", f"analysis.include_weight_decay={str(decay).lower()}"]
    dense = _analyze(run, [*extra, "analysis.solver=dense", f"analysis.name=dense{int(decay)}"])
    # the dense path takes tr(H), tr(H²) from all P eigenvalues: an independent computation
    np.testing.assert_allclose(dense.trace_exact, dense.trace, rtol=1e-10)
    np.testing.assert_allclose(dense.trace_sq_exact, dense.trace_sq, rtol=1e-10)
    np.testing.assert_allclose(dense.ws_bound_exact, dense.ws_bound, rtol=1e-10)
    np.testing.assert_allclose(dense.ws_lower_exact, dense.ws_lower, rtol=1e-10)
    assert (dense.ws_lower_exact <= dense.lambda_max * (1 + 1e-9)).all()
    assert (dense.lambda_max <= dense.ws_bound_exact * (1 + 1e-9)).all()
    np.testing.assert_allclose(dense.lambda_max_over_ws_exact, dense.lambda_max / dense.ws_bound_exact)


def test_exact_columns_sit_beside_the_hutchpp_estimates(run: Path) -> None:
    it = _analyze(run, ["analysis.metrics=[spectrum,trace]", "analysis.trace_hvps=60", "analysis.name=it"])
    assert it[EXACT].notna().all().all()
    assert (it.trace_se > 0).all()
    # the estimate is of the same quantity: within 4 of its standard errors (a loose, seeded check)
    assert ((it.trace - it.trace_exact).abs() <= 4 * it.trace_se + 1e-12).all()
    assert ((it.trace_sq - it.trace_sq_exact).abs() <= 4 * it.trace_sq_se + 1e-12).all()


def test_other_models_and_the_ggn_leave_the_exact_columns_empty(run: Path, tmp_path: Path) -> None:
    ggn = _analyze(run, ["analysis.metrics=[spectrum,trace]", "analysis.curvature=ggn", "analysis.name=ggn"])
    assert ggn.reindex(columns=EXACT).isna().all().all()  # absent or empty
    mlp = tmp_path / "mlp"
    train(typed_config(["model.widths=[8]", *TRAIN[3:]]), mlp)
    plain = _analyze(mlp, ["analysis.metrics=[spectrum,trace]"])
    assert plain.reindex(columns=EXACT).isna().all().all()
