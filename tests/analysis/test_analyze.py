"""hessdyn analyze end to end: tables present and consistent, resume after kill, settings never mixed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from hessdyn.analysis.loading import open_run
from hessdyn.analysis.runner import analyze_run
from hessdyn.config.errors import HessdynError
from hessdyn.reparam import epsilon_sharpness
from hessdyn.training.loop import train
from tests.training.helpers import typed_config

TRAIN = [
    "model.widths=[12]",
    "trainer.max_steps=60",
    "trainer.batch_size=64",
    "checkpoint.schedule=list",
    "checkpoint.steps=[5,20]",
    "trainer.log_every=10",
    "optimizer.lr=0.3",
    "dataset.n_train=400",
    "dataset.n_test=100",
]
ANALYSIS = [
    "analysis.top_k=4",
    "analysis.bottom_k=2",
    "analysis.hessian_set=200",
    "analysis.tol=1e-6",
    "analysis.trace_hvps=30",
    "analysis.null_random_vectors=50",
    "analysis.null_init_seeds=2",
]


def _analysis_cfg(extra: list[str] = ()):  # the analyze command's typed analysis section
    return typed_config([*ANALYSIS, *extra], config_name="analyze").analysis


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    runs = {}
    for opt in ("sgd", "adam"):
        overrides = [*TRAIN, f"optimizer={opt}"] + (["optimizer.lr=0.01"] if opt == "adam" else [])
        train(typed_config(overrides), root / opt)
        runs[opt] = root / opt
    return runs


@pytest.fixture(scope="module")
def analyzed(trained, tmp_path_factory) -> dict[str, Path]:
    out = {}
    for opt, run in trained.items():
        copy = tmp_path_factory.mktemp(f"an-{opt}") / "run"
        shutil.copytree(run, copy)
        analyze_run(
            copy,
            _analysis_cfg(
                [
                    "analysis.metrics=[spectrum,bottom,trace,trajectory,localization,"
                    "alignment,optimizer,density]"
                ]
            ),
            progress=False,
        )
        out[opt] = copy / "analysis"
    return out


def test_every_table_is_present_and_consistent(analyzed):
    for opt, folder in analyzed.items():
        for name in (
            "analysis.json",
            "spectrum.csv",
            "summary.csv",
            "trajectory.csv",
            "layer_mass.csv",
            "nulls.csv",
            "events.csv",
            "density.csv",
            "top_params.csv",
        ):
            assert (folder / name).is_file(), (opt, name)
        meta = json.loads((folder / "analysis.json").read_text())
        steps = [0, 5, 20, 60]
        assert meta["selected_steps"] == steps and meta["status"] == "complete"
        P = meta["num_params"]
        spec = pd.read_csv(folder / "spectrum.csv")
        top = spec[spec.which == "top"]
        assert sorted(top.step.unique()) == steps
        for _, g in top.groupby("step"):
            ev = g.sort_values("rank").eigenvalue.to_numpy()
            assert np.all(np.diff(ev) <= 1e-12), "top eigenvalues must descend"
        assert top.converged.all()
        assert (top.rel_residual <= 1e-6).all()
        assert ((top.ipr >= 1.0 / P - 1e-12) & (top.ipr <= 1.0)).all()
        np.testing.assert_allclose(top.ipr_normalized, top.ipr * P / 3.0, rtol=1e-12)
        bottom = spec[spec.which == "bottom"]
        for st, g in bottom.groupby("step"):
            ev = g.sort_values("rank").eigenvalue.to_numpy()
            assert np.all(np.diff(ev) >= -1e-12)
            assert ev[0] <= top[top.step == st].eigenvalue.min()
        mass = pd.read_csv(folder / "layer_mass.csv").groupby(["step", "rank"]).mass.sum()
        np.testing.assert_allclose(mass.to_numpy(), 1.0, atol=1e-6)
        summary = pd.read_csv(folder / "summary.csv")
        assert list(summary.step) == steps
        lam = top[top["rank"] == 1].set_index("step").eigenvalue
        np.testing.assert_allclose(summary.set_index("step").lambda_max, lam)
        assert (summary.grad_alignment.between(0, 1)).all()
        assert summary.update_alignment.iloc[1:].between(0, 1).all()
        traj = pd.read_csv(folder / "trajectory.csv")
        n_pairs = len(steps) * (len(steps) - 1) // 2
        assert (traj.metric == "subspace_overlap").sum() == n_pairs
        assert traj[traj.metric.str.startswith("displacement")].value.between(0, 2).all()
        assert traj[traj.metric == "subspace_overlap"].value.between(0, 1 + 1e-9).all()
        density = pd.read_csv(folder / "density.csv")
        for _, g in density.groupby("step"):
            area = np.trapezoid(g.density, g.eigenvalue)
            assert abs(area - 1) < 0.05
        nulls = pd.read_csv(folder / "nulls.csv")
        rnd = nulls[nulls.null == "random"]
        assert abs(rnd.ipr.mean() - 3 / (P + 2)) < 5 * rnd.ipr.std() / np.sqrt(len(rnd))
        assert set(nulls[nulls.null == "architecture"].seed) == {10000, 10001}


def test_optimizer_aware_columns(analyzed):
    sgd = pd.read_csv(analyzed["sgd"] / "summary.csv")
    assert (sgd.stability_mode == "analysis").all() and "lambda_max_trained" not in sgd  # no batch norm
    assert json.loads((analyzed["sgd"] / "analysis.json").read_text())["stability_mode"] is None
    np.testing.assert_allclose(sgd.stability_threshold, 2 / sgd.lr)
    np.testing.assert_allclose(sgd.sharpness_lr, sgd.lr * sgd.lambda_max)
    assert sgd.precond_lambda_max.isna().all()
    adam = pd.read_csv(analyzed["adam"] / "summary.csv")
    np.testing.assert_allclose(adam.precond_threshold, (2 + 2 * 0.9) / ((1 - 0.9) * adam.lr))
    assert np.isnan(adam.precond_lambda_max.iloc[0])  # no second-moment state at step 0
    assert (adam.precond_lambda_max.iloc[1:] > 0).all()
    assert adam.stability_threshold.isna().all()


def test_dense_path_matches_iterative_and_ws_bound_holds(trained, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained["sgd"], run)
    analyze_run(
        run,
        _analysis_cfg(
            [
                "analysis.solver=dense",
                "analysis.checkpoints=list",
                "analysis.steps=[0,60]",
                "analysis.name=dense",
                "analysis.metrics=[spectrum,trace]",
            ]
        ),
        progress=False,
    )
    analyze_run(
        run,
        _analysis_cfg(
            [
                "analysis.checkpoints=list",
                "analysis.steps=[0,60]",
                "analysis.name=iter",
                "analysis.metrics=[spectrum,trace]",
            ]
        ),
        progress=False,
    )
    dense = pd.read_csv(run / "analysis-dense" / "spectrum.csv")
    it = pd.read_csv(run / "analysis-iter" / "spectrum.csv")
    merged = dense.merge(it, on=["step", "which", "rank"], suffixes=("_d", "_i"))
    np.testing.assert_allclose(merged.eigenvalue_i, merged.eigenvalue_d, rtol=1e-8)
    summary = pd.read_csv(run / "analysis-dense" / "summary.csv")
    assert (summary.ws_bound >= summary.lambda_max).all()
    assert (summary.trace_se == 0).all()


def test_changed_settings_are_refused_and_named_settings_get_their_own_folder(analyzed, tmp_path):
    run = analyzed["sgd"].parent
    with pytest.raises(HessdynError, match=r"other settings \(analysis.top_k: 4 -> 3\)") as info:
        analyze_run(
            run,
            _analysis_cfg(
                [
                    "analysis.top_k=3",
                    "analysis.metrics=[spectrum,bottom,trace,trajectory,"
                    "localization,alignment,optimizer,density]",
                ]
            ),
            progress=False,
        )
    assert "\n" not in str(info.value)
    before = (run / "analysis" / "spectrum.csv").read_bytes()
    outcome = analyze_run(
        run,
        _analysis_cfg(
            ["analysis.metrics=[spectrum,bottom,trace,trajectory,localization,alignment,optimizer,density]"]
        ),
        progress=False,
    )
    assert outcome.analyzed == [] and outcome.skipped == [0, 5, 20, 60]
    assert (run / "analysis" / "spectrum.csv").read_bytes() == before


def _tables(folder: Path) -> dict[str, pd.DataFrame]:
    out = {}
    for path in sorted(folder.glob("*.csv")):
        frame = pd.read_csv(path)
        out[path.name] = frame.drop(columns=[c for c in frame.columns if c in ("wall_s",)])
    return out


@pytest.mark.slow
def test_kill_9_mid_analysis_then_rerun_gives_the_same_tables(trained, tmp_path):
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    shutil.copytree(trained["adam"], ref)
    shutil.copytree(trained["adam"], killed)
    args = [*ANALYSIS, "analysis.max_hvps=400"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "hessdyn", "analyze"]
    assert subprocess.run([*cmd, f"run_dir={ref}", *args], env=env, capture_output=True).returncode == 0
    proc = subprocess.Popen(
        [*cmd, f"run_dir={killed}", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if len(list((killed / "analysis" / "steps").glob("*.json"))) >= 2:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "analysis finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "analysis" / "trajectory.csv").exists()
    rerun = subprocess.run([*cmd, f"run_dir={killed}", *args], env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    a, b = _tables(ref / "analysis"), _tables(killed / "analysis")
    assert a.keys() == b.keys()
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name], check_exact=True, obj=name)
    for path in (ref / "analysis" / "eigvecs").iterdir():
        x = torch.load(path, weights_only=True)
        y = torch.load(killed / "analysis" / "eigvecs" / path.name, weights_only=True)
        assert torch.equal(x["eigenvectors"], y["eigenvectors"])


@pytest.mark.slow
def test_cli_analyze_errors_are_one_line(run_cli, tmp_path, trained):
    proc = run_cli("analyze", f"run_dir={tmp_path / 'nope'}")
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert "does not exist" in proc.stderr
    proc = run_cli("analyze")
    assert proc.returncode == 2 and "pass exactly one of run_dir=PATH" in proc.stderr


def test_reparam_panel_separates_invariant_from_non_invariant_sharpness(trained, tmp_path):
    """Dinh et al.: α-rescaling leaves the function, θᵀHθ and λmax(diag|θ| H diag|θ|) unchanged and moves
    λmax by orders of magnitude; the analysis table must show exactly that."""
    run = tmp_path / "run"
    shutil.copytree(trained["sgd"], run)
    settings = _analysis_cfg(
        [
            "analysis.metrics=[spectrum,reparam]",
            "analysis.reparam_alphas=[0.1,1.0,10.0]",
            "analysis.checkpoints=list",
            "analysis.steps=[60]",
            "analysis.bottom_k=0",
        ]
    )
    analyze_run(run, settings, progress=False)
    table = pd.read_csv(run / "analysis" / "reparam.csv")
    assert list(table.step.unique()) == [60] and sorted(table.alpha) == [0.1, 1.0, 10.0]
    assert (table.output_diff < 1e-9).all()
    one = table[table.alpha == 1.0].iloc[0]
    spectrum = pd.read_csv(run / "analysis" / "spectrum.csv")
    top1 = spectrum[(spectrum.which == "top") & (spectrum["rank"] == 1) & (spectrum.step == 60)].eigenvalue
    assert one.lambda_max == pytest.approx(float(top1.iloc[0]), rel=1e-5)
    assert table.lambda_max.max() > 20 * table.lambda_max.min()  # not invariant
    np.testing.assert_allclose(table.theta_h_theta, one.theta_h_theta, rtol=1e-8)
    np.testing.assert_allclose(table.scaled_lambda_max, one.scaled_lambda_max, rtol=1e-5)


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_checkpoints_at_zero_learning_rate_have_no_threshold_but_are_analyzed(tmp_path, optimizer):
    """A cosine schedule ends at lr = 0: the last checkpoint has no stability threshold, and is analyzed."""
    run = tmp_path / "run"
    overrides = [*TRAIN, f"optimizer={optimizer}", "schedule=cosine"]
    train(typed_config(overrides + (["optimizer.lr=0.01"] if optimizer == "adam" else [])), run)
    analyze_run(
        run, _analysis_cfg(["analysis.metrics=[spectrum,optimizer]", "analysis.bottom_k=0"]), progress=False
    )
    summary = pd.read_csv(run / "analysis" / "summary.csv").set_index("step")
    assert list(summary.index) == [0, 5, 20, 60]
    assert summary.lr[60] == 0.0 and (summary.lr[[0, 5, 20]] > 0).all()
    threshold = summary.stability_threshold if optimizer == "momentum" else summary.precond_threshold
    assert np.isnan(threshold[60]) and (threshold[[0, 5, 20]] > 0).all()
    if optimizer == "momentum":
        np.testing.assert_allclose(threshold[[0, 5, 20]], (2 + 2 * 0.9) / summary.lr[[0, 5, 20]])
    else:
        assert summary.precond_lambda_max[60] > 0  # the curvature itself is still measured


def test_a_checkpoint_whose_curvature_overflows_is_left_out_with_its_reason(trained, tmp_path):
    """A checkpoint whose curvature is not finite (a diverged run's overflow; here one NaN weight) is
    recorded as skipped with the reason, the others are analyzed, and a rerun does not retry it."""
    run = tmp_path / "run"
    shutil.copytree(trained["sgd"], run)
    last = run / "checkpoints" / "step_00000060.pt"
    state = torch.load(last, weights_only=True)
    first_weight = next(k for k in state["model"] if k.endswith("weight"))
    state["model"][first_weight][0, 0] = float("nan")
    torch.save(state, last)
    settings = _analysis_cfg(
        ["analysis.metrics=[spectrum,trace,trajectory,localization]", "analysis.bottom_k=0"]
    )
    outcome = analyze_run(run, settings, progress=False)
    assert outcome.status == "complete" and outcome.left_out == [60] and outcome.analyzed == [0, 5, 20]
    meta = json.loads((run / "analysis" / "analysis.json").read_text())
    assert meta["skipped_steps"] == [60] and "not finite" in meta["checkpoints"]["60"]["skipped"]
    spectrum = pd.read_csv(run / "analysis" / "spectrum.csv")
    assert sorted(spectrum.step.unique()) == [0, 5, 20]
    traj = pd.read_csv(run / "analysis" / "trajectory.csv")
    assert 60 not in set(traj.step_a) | set(traj.step_b)
    again = analyze_run(run, settings, progress=False)
    assert again.analyzed == [] and again.hvps == 0 and again.left_out == [60]  # nothing retried
    assert json.loads((run / "analysis" / "analysis.json").read_text())["skipped_steps"] == [60]


def test_a_run_with_no_analyzable_checkpoint_is_one_clear_error(trained, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained["sgd"], run)
    for path in sorted((run / "checkpoints").glob("step_*.pt")):
        state = torch.load(path, weights_only=True)
        first_weight = next(k for k in state["model"] if k.endswith("weight"))
        state["model"][first_weight][0, 0] = float("nan")
        torch.save(state, path)
    settings = _analysis_cfg(["analysis.metrics=[spectrum]", "analysis.bottom_k=0"])
    with pytest.raises(
        HessdynError, match=r"no selected checkpoint could be analyzed \(.*not finite.*float64\)"
    ) as info:
        analyze_run(run, settings, progress=False)
    assert "\n" not in str(info.value)


def test_with_dropout_the_loss_and_eps_sharpness_are_of_the_eval_mode_network(tmp_path):
    """Issue 17, item 5: with dropout > 0 a training-mode forward is random. The summary's loss and the
    reparam panel's loss and ε-sharpness must be of the analysis' Hessian mode (eval): identical across
    repeated analyses and equal to a hand computation with the network in eval mode."""
    run = tmp_path / "run"
    train(typed_config([*TRAIN, "model.dropout=0.5"]), run)
    settings = [
        "analysis.metrics=[spectrum,reparam]",
        "analysis.reparam_alphas=[0.5,1.0]",
        "analysis.checkpoints=list",
        "analysis.steps=[60]",
        "analysis.bottom_k=0",
    ]
    for name in ("a", "b"):
        analyze_run(run, _analysis_cfg([*settings, f"analysis.name={name}"]), progress=False)
    tables = {name: _tables(run / f"analysis-{name}") for name in ("a", "b")}
    for file in ("reparam.csv", "summary.csv"):
        columns = [c for c in tables["a"][file].columns if c != "hvps"]
        pd.testing.assert_frame_equal(
            tables["a"][file][columns], tables["b"][file][columns], check_exact=True
        )

    cfg = _analysis_cfg(settings)
    ctx = open_run(run, cfg, torch.device("cpu"))
    model, _ = ctx.load(60)
    assert any(isinstance(m, torch.nn.Dropout) and m.p == 0.5 for m in model.modules())
    model = model.to(torch.float64).eval()
    x, y = ctx.hessian_set.x.to(torch.float64), ctx.hessian_set.y
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def eval_loss(flat: torch.Tensor) -> torch.Tensor:
        params = dict(zip(names, torch.split(flat, [s.numel() for s in shapes]), strict=True))
        params = {n: v.reshape(s) for (n, v), s in zip(params.items(), shapes, strict=True)}
        return torch.nn.functional.cross_entropy(torch.func.functional_call(model, params, (x,)), y)

    by_hand = float(eval_loss(theta))
    eps = epsilon_sharpness(eval_loss, theta, epsilon=cfg.eps_sharpness, seed=cfg.seed)
    summary = tables["a"]["summary.csv"].iloc[0]
    one = tables["a"]["reparam.csv"].set_index("alpha").loc[1.0]
    assert summary.loss == pytest.approx(by_hand, rel=1e-12)
    assert one.loss == pytest.approx(by_hand, rel=1e-12)
    assert one.eps_sharpness == pytest.approx(eps.relative_increase_percent, rel=1e-9)
    with (
        torch.no_grad()
    ):  # the test can fail: in train mode dropout moves the loss far beyond these tolerances
        train_mode = torch.nn.functional.cross_entropy(model.train()(x), y).item()
    assert abs(train_mode - by_hand) > 1e-3 * by_hand
