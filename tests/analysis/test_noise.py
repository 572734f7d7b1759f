"""The noise metric group end to end, against C, M and H built densely from per-example Jacobians with
torch.autograd (no hessdyn operator in the reference)."""

from __future__ import annotations

import copy
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from hessdyn.analysis.loading import open_run
from hessdyn.analysis.noise import COVARIANCE_SET, MOMENT_SET, minibatch_scale
from hessdyn.analysis.runner import analyze_run
from hessdyn.analysis.settings import GROUP_SETTINGS, settings_dict, settings_fingerprint
from hessdyn.config.errors import ConfigValueError
from hessdyn.store import AnalysisDir, pair_keys
from tests.curvature.cases import flat_function
from tests.training.helpers import typed_config

N_TRAIN, BATCH, K = 200, 32, 4
TRAIN = [
    "model.widths=[6]",
    "trainer.max_steps=60",
    f"trainer.batch_size={BATCH}",
    "checkpoint.schedule=list",
    "checkpoint.steps=[20]",
    "optimizer.lr=0.3",
    f"dataset.n_train={N_TRAIN}",
    "dataset.n_test=100",
]
NOISE = [
    f"analysis.top_k={K}",
    "analysis.bottom_k=0",
    "analysis.hessian_set=100",
    "analysis.tol=1e-9",
    "analysis.metrics=[spectrum,noise]",
]


def _settings(extra: list[str] = ()):
    return typed_config([*NOISE, *extra], config_name="analyze").analysis


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    from hessdyn.training.loop import train

    root = tmp_path_factory.mktemp("noise") / "run"
    train(typed_config(TRAIN), root)
    return root


@pytest.fixture(scope="module")
def analyzed(run, tmp_path_factory) -> Path:
    copy_ = tmp_path_factory.mktemp("noise-an") / "run"
    shutil.copytree(run, copy_)
    analyze_run(copy_, _settings(), progress=False)
    return copy_


def _reference(run_dir: Path, step: int) -> dict[str, torch.Tensor]:
    """Dense H, C, M and θ at ``step`` over the analysis' Hessian set, from torch.autograd alone."""
    ctx = open_run(run_dir, _settings(), torch.device("cpu"))
    model, _ = ctx.load(step)
    model = copy.deepcopy(model).double()
    x, y = ctx.hessian_set.x.double(), ctx.hessian_set.y
    logits, theta = flat_function(model, x)
    H = torch.autograd.functional.hessian(lambda t: F.cross_entropy(logits(t), y), theta)
    G = torch.autograd.functional.jacobian(lambda t: F.cross_entropy(logits(t), y, reduction="none"), theta)
    g_bar = G.mean(0)
    M = G.T @ G / G.shape[0]
    C = (G - g_bar).T @ (G - g_bar) / G.shape[0]
    return {"H": H, "C": C, "M": M, "theta": theta}


def _top(A: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    w, U = torch.linalg.eigh(A)
    return w.flip(0)[:k], U.flip(1)[:, :k]


def test_noise_tables_match_dense_per_example_references(analyzed):
    folder = analyzed / "analysis"
    noise = pd.read_csv(folder / "noise.csv").set_index("step")
    spectrum = pd.read_csv(folder / "noise_spectrum.csv")
    gamma = pd.read_csv(folder / "noise_gamma.csv")
    assert list(noise.index) == [0, 20, 60]
    for step in (0, 60):
        ref = _reference(analyzed, step)
        H, C, M, theta = ref["H"], ref["C"], ref["M"], ref["theta"]
        P = H.shape[0]
        row = noise.loc[step]
        for matrix, A in (("covariance", C), ("second_moment", M)):
            got = spectrum[(spectrum.step == step) & (spectrum.matrix == matrix)].sort_values("rank")
            np.testing.assert_allclose(got.eigenvalue, _top(A, K)[0].numpy(), rtol=1e-7)
            assert got.converged.all()
        assert row.trace_covariance == pytest.approx(float(C.trace()), rel=1e-9)
        assert row.trace_second_moment == pytest.approx(float(M.trace()), rel=1e-9)
        assert row.trace_hessian == pytest.approx(float(H.trace()), rel=1e-9)
        assert row.diagonal == "exact" and row.trace_hessian_se == 0.0
        assert row.covariance_over_hessian == pytest.approx(float(C.trace() / H.trace()), rel=1e-9)
        _, V_h = _top(H, K)
        _, V_c = _top(C, K)
        _, V_m = _top(M, K)
        assert row.overlap_covariance_hessian == pytest.approx(
            float((V_c.T @ V_h).pow(2).sum()) / K, abs=1e-6
        )
        assert row.overlap_moment_hessian == pytest.approx(float((V_m.T @ V_h).pow(2).sum()) / K, abs=1e-6)
        assert row.random_overlap == pytest.approx(K / P)
        Q, _ = torch.linalg.qr(torch.cat([V_h, V_c], dim=1))
        A, B = Q.T @ C @ Q, Q.T @ H @ Q
        expected = float(
            torch.linalg.matrix_norm(A @ B - B @ A)
            / (torch.linalg.matrix_norm(A) * torch.linalg.matrix_norm(B))
        )
        assert row.commutation == pytest.approx(expected, rel=1e-5, abs=1e-9)
        assert row.commutation_dim == 2 * K
        captured = float(torch.trace(V_h.T @ C @ V_h))
        assert row.noise_fraction_top_k == pytest.approx(captured / float(C.trace()), abs=1e-7)
        scale = (N_TRAIN - BATCH) / (BATCH * (N_TRAIN - 1))
        assert (row.train_batch_size, row.train_size) == (BATCH, N_TRAIN)
        assert row.minibatch_noise_trace == pytest.approx(scale * float(C.trace()), rel=1e-9)
        assert row.minibatch_noise_top_k == pytest.approx(scale * captured, rel=1e-6)
        assert row.theta_h_theta == pytest.approx(float(theta @ H @ theta), rel=1e-8)
        assert row.theta2_h_diagonal == pytest.approx(float((theta**2 * H.diagonal()).sum()), rel=1e-8)
        assert row.converged_covariance == K and row.converged_moment == K
        fit = gamma[(gamma.step == step) & (gamma.param == "all")].iloc[0]
        h, c = H.diagonal().numpy(), C.diagonal().numpy()
        keep = (h > 0) & (c > 0)
        slope = np.polyfit(np.log(h[keep]), np.log(c[keep]), 1)[0]
        assert fit.gamma == pytest.approx(slope, rel=1e-8)
        assert fit.gamma_low < fit.gamma < fit.gamma_high
        assert fit.used == keep.sum() and fit.entries == P
        per_tensor = gamma[(gamma.step == step) & (gamma.param != "all")]
        assert list(per_tensor.param) == ["hidden0.weight", "hidden0.bias", "output.weight", "output.bias"]
        assert per_tensor.entries.sum() == P


def test_the_covariance_and_moment_vectors_are_saved_and_warm_start_the_next_checkpoint(analyzed):
    adir = AnalysisDir(analyzed)
    saved = adir.load_vectors(60)
    assert saved["extra_sets"] == [COVARIANCE_SET, MOMENT_SET]
    ref = _reference(analyzed, 60)
    for name, A in ((COVARIANCE_SET, ref["C"]), (MOMENT_SET, ref["M"])):
        values_key, vectors_key = pair_keys(name)
        V = saved[vectors_key].double()
        assert (
            V.dtype == torch.float64
            and saved[vectors_key].dtype == torch.float32
            and V.shape == (K, A.shape[0])
        )
        np.testing.assert_allclose(saved[values_key].numpy(), _top(A, K)[0].numpy(), rtol=1e-7)
        rayleigh = torch.einsum("kp,pq,kq->k", V, A, V)
        np.testing.assert_allclose(rayleigh.numpy(), saved[values_key].numpy(), rtol=1e-5)
    from hessdyn.analysis.runner import _warm_start

    ctx = open_run(analyzed, _settings(), torch.device("cpu"))
    names = tuple(saved["param_names"])
    previous = adir.load_vectors(20)
    starts = _warm_start(ctx, 20, previous, names)["start_extra"]
    assert set(starts) == {COVARIANCE_SET, MOMENT_SET}
    assert torch.equal(starts[COVARIANCE_SET], previous[pair_keys(COVARIANCE_SET)[1]].double())


def test_a_forgotten_checkpoint_is_recomputed_to_the_same_rows(analyzed, tmp_path):
    again = tmp_path / "run"
    shutil.copytree(analyzed, again)
    adir = AnalysisDir(again)
    adir.forget_step(60)
    out = analyze_run(again, _settings(), progress=False)
    assert out.analyzed == [60]
    for name in ("noise", "noise_spectrum", "noise_gamma"):
        a = pd.read_csv(analyzed / "analysis" / f"{name}.csv").drop(columns=["wall_s"], errors="ignore")
        b = pd.read_csv(again / "analysis" / f"{name}.csv").drop(columns=["wall_s"], errors="ignore")
        pd.testing.assert_frame_equal(a, b, check_exact=True, obj=name)


def test_bekas_diagonal_brackets_the_exact_trace_and_cuts_insignificant_entries(analyzed, tmp_path):
    again = tmp_path / "run"
    shutil.copytree(analyzed, again)
    settings = _settings(
        ["analysis.name=bekas", "analysis.noise_diagonal=bekas", "analysis.noise_probes=200"]
    )
    analyze_run(again, settings, progress=False)
    exact = pd.read_csv(analyzed / "analysis" / "noise.csv").set_index("step")
    est = pd.read_csv(again / "analysis-bekas" / "noise.csv").set_index("step")
    assert (est.diagonal == "bekas").all() and (est.trace_hessian_se > 0).all()
    z = (est.trace_hessian - exact.trace_hessian) / est.trace_hessian_se
    assert (z.abs() < 4).all(), z
    assert (est.theta2_h_diagonal_se > 0).all()
    gamma = pd.read_csv(again / "analysis-bekas" / "noise_gamma.csv")
    everything = gamma[gamma.param == "all"]
    assert (everything.insignificant > 0).any()
    assert (
        everything.used
        + everything.insignificant
        + everything.nonpositive_curvature
        + everything.nonpositive_noise
        == everything.entries
    ).all()
    for col in ("trace_covariance", "trace_second_moment", "overlap_covariance_hessian", "commutation"):
        np.testing.assert_allclose(est[col], exact[col], rtol=1e-10, err_msg=col)


def test_minibatch_scale():
    assert minibatch_scale(1, 10) == pytest.approx(1.0)  # one example: the per-example covariance
    assert minibatch_scale(10, 10) == 0.0  # full batch: no noise
    assert minibatch_scale(4, 10) == pytest.approx(6 / 36)
    assert math.isnan(minibatch_scale(None, 10))


def test_noise_with_batch_statistics_is_one_config_error():
    with pytest.raises(ConfigValueError, match=r"'analysis.batchnorm'.*noise") as info:
        _settings(["analysis.batchnorm=train"])
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigValueError, match="analysis.noise_top_k"):
        _settings(["analysis.noise_top_k=5"])
    with pytest.raises(ConfigValueError, match="analysis.noise_probes"):
        _settings(["analysis.noise_probes=1"])


def test_cli_refuses_noise_with_batch_statistics_before_writing(run_cli, run, tmp_path):
    target = tmp_path / "run"
    shutil.copytree(run, target)
    proc = run_cli(
        "analyze", f"run_dir={target}", "analysis.metrics=[spectrum,noise]", "analysis.batchnorm=train"
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "analysis.batchnorm" in proc.stderr
    assert not (target / "analysis").exists()


def test_noise_settings_leave_the_fingerprint_of_analyses_without_the_group_unchanged():
    base = typed_config([], config_name="analyze").analysis
    plain = settings_dict(base)
    for key in GROUP_SETTINGS["noise"]:
        plain.pop(key)
    assert settings_fingerprint(base) == settings_fingerprint(plain)
    other = typed_config(["analysis.noise_probes=7"], config_name="analyze").analysis
    assert settings_fingerprint(other) == settings_fingerprint(base)
    on = typed_config(["analysis.metrics=[spectrum,noise]"], config_name="analyze").analysis
    on_other = typed_config(
        ["analysis.metrics=[spectrum,noise]", "analysis.noise_probes=7"], config_name="analyze"
    ).analysis
    assert settings_fingerprint(on) != settings_fingerprint(on_other)
