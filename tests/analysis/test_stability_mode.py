"""Issue 17, item 6: for a batch-norm net the stability columns are of the loss as trained (batch statistics
over batches of the training batch size), the spectrum stays in the analysis' mode (eval: running
statistics); both are checked against dense Hessians of hand-written functional networks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hessdyn.analysis.checkpoint import CheckpointInputs, trained_hessian
from hessdyn.analysis.groups import analyze_checkpoint
from hessdyn.config import schema as s
from hessdyn.curvature import HessianSet

N, BATCH, D_IN, HIDDEN, CLASSES = 24, 8, 4, 5, 3
BN_EPS = 1e-5


def _bn_net() -> nn.Sequential:
    """Linear → BatchNorm1d → tanh → Linear with running statistics far from any batch's, so the eval-mode
    and the batch-statistics Hessians differ clearly."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Linear(D_IN, HIDDEN), nn.BatchNorm1d(HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, CLASSES)
    )
    with torch.no_grad():
        net[1].weight.uniform_(0.5, 1.5)
        net[1].bias.uniform_(-0.3, 0.3)
        net[1].running_mean.uniform_(-1.0, 1.0)
        net[1].running_var.uniform_(0.2, 3.0)
    return net.double()


def _data() -> HessianSet:
    """Three batches of 8 with different input means, so batching matters for batch statistics."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(N, D_IN, generator=g, dtype=torch.float64) * 1.5 + 0.4
    x += torch.repeat_interleave(torch.tensor([-1.5, 0.0, 2.0], dtype=torch.float64), BATCH)[:, None]
    y = torch.randint(0, CLASSES, (N,), generator=g)
    return HessianSet(x, y, torch.arange(N))


def _split(theta: torch.Tensor, net: nn.Sequential) -> list[torch.Tensor]:
    shapes = [p.shape for p in net.parameters()]
    return [
        v.reshape(sh) for v, sh in zip(torch.split(theta, [sh.numel() for sh in shapes]), shapes, strict=True)
    ]


def _forward(theta: torch.Tensor, net: nn.Sequential, x: torch.Tensor, batch_stats: bool) -> torch.Tensor:
    """The network written out by hand: batch norm with the batch's mean and biased variance, or with the
    stored running statistics."""
    w1, b1, gamma, beta, w2, b2 = _split(theta, net)
    h = x @ w1.T + b1
    if batch_stats:
        mean, var = h.mean(0), h.var(0, unbiased=False)
    else:
        mean, var = net[1].running_mean, net[1].running_var
    h = torch.tanh((h - mean) / torch.sqrt(var + BN_EPS) * gamma + beta)
    return h @ w2.T + b2


def _dense_hessian(net: nn.Sequential, data: HessianSet, batch_stats: bool, batch: int) -> torch.Tensor:
    """Hessian of Σ_b (n_b/N)·CE(batch b), batches of ``batch`` consecutive examples."""
    theta = torch.cat([p.detach().reshape(-1) for p in net.parameters()])

    def loss(t: torch.Tensor) -> torch.Tensor:
        total = t.new_zeros(())
        for i in range(0, N, batch):
            xb, yb = data.x[i : i + batch], data.y[i : i + batch]
            total = total + F.cross_entropy(_forward(t, net, xb, batch_stats), yb) * (len(yb) / N)
        return total

    return torch.autograd.functional.hessian(loss, theta)


def _settings(**kw) -> s.AnalysisConfig:
    return s.AnalysisConfig(
        top_k=2,
        bottom_k=0,
        tol=1e-9,
        max_hvps=500,
        metrics=[s.MetricGroup.spectrum, s.MetricGroup.optimizer],
        **kw,
    )


def _analyze(net, data, optimizer_cfg, state=None, settings=None, lr=0.1):
    inputs = CheckpointInputs(
        step=3,
        epoch=1.0,
        model=net,
        checkpoint={"lr": lr, "optimizer": state or {"state": {}, "param_groups": []}},
        hessian_set=data,
        settings=settings or _settings(),
        optimizer_cfg=optimizer_cfg,
        dtype=torch.float64,
        train_batch_size=BATCH,
    )
    return analyze_checkpoint(inputs).rows["summary"][0]


def test_sgd_stability_columns_use_the_batch_statistics_hessian_and_the_spectrum_stays_in_eval_mode():
    net, data = _bn_net(), _data()
    eval_h = _dense_hessian(net, data, batch_stats=False, batch=N)
    trained_h = _dense_hessian(net, data, batch_stats=True, batch=BATCH)
    one_batch_h = _dense_hessian(net, data, batch_stats=True, batch=N)
    lam_eval = float(torch.linalg.eigvalsh(eval_h)[-1])
    lam_trained = float(torch.linalg.eigvalsh(trained_h)[-1])
    lam_one_batch = float(torch.linalg.eigvalsh(one_batch_h)[-1])
    # the three Hessians are different functions' (else the test could not tell them apart)
    assert min(abs(lam_eval - lam_trained), abs(lam_one_batch - lam_trained)) > 0.05 * lam_trained

    running, training = net[1].running_mean.clone(), net.training
    row = _analyze(net, data, s.SGDConfig(lr=0.1))
    assert row["lambda_max"] == pytest.approx(lam_eval, rel=1e-8)
    assert row["lambda_max_trained"] == pytest.approx(lam_trained, rel=1e-8)
    assert row["lambda_max_trained_converged"] is True
    assert row["stability_mode"] == "batch_statistics"
    assert row["sharpness_lr"] == pytest.approx(0.1 * lam_trained, rel=1e-8)
    assert row["stability_threshold"] == pytest.approx(2 / 0.1)
    # the caller's module keeps its mode and its running statistics
    assert net.training == training and torch.equal(net[1].running_mean, running)


def test_adam_preconditioned_sharpness_is_of_the_batch_statistics_hessian():
    net, data = _bn_net(), _data()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for i in range(3):  # three steps on the training batches (updates the running statistics too)
        opt.zero_grad()
        F.cross_entropy(
            net.train()(data.x[i * BATCH : (i + 1) * BATCH]), data.y[i * BATCH : (i + 1) * BATCH]
        ).backward()
        opt.step()
    net.eval()
    state = opt.state_dict()
    t = 3
    v = torch.cat([state["state"][i]["exp_avg_sq"].reshape(-1) for i in range(len(list(net.parameters())))])
    p_t = (1 - 0.9**t) * (torch.sqrt(v / (1 - 0.999**t)) + 1e-8)  # Cohen et al. 2022, bias-corrected
    d = p_t.rsqrt()
    trained_h = _dense_hessian(net, data, batch_stats=True, batch=BATCH)
    eval_h = _dense_hessian(net, data, batch_stats=False, batch=N)
    expected = float(torch.linalg.eigvalsh(d[:, None] * trained_h * d[None, :])[-1])
    in_eval = float(torch.linalg.eigvalsh(d[:, None] * eval_h * d[None, :])[-1])
    assert abs(expected - in_eval) > 0.05 * expected

    row = _analyze(net, data, s.AdamConfig(lr=1e-2), state=state, lr=1e-2)
    assert row["precond_lambda_max"] == pytest.approx(expected, rel=1e-7)
    assert row["precond_threshold"] == pytest.approx((2 + 2 * 0.9) / ((1 - 0.9) * 1e-2))
    assert row["stability_mode"] == "batch_statistics"
    assert row["lambda_max"] == pytest.approx(float(torch.linalg.eigvalsh(eval_h)[-1]), rel=1e-8)


def test_no_second_hessian_where_the_analysis_already_has_the_one_trained_on():
    net, data = _bn_net(), _data()
    same = _settings(batchnorm=s.BatchNormMode.train, batch_size=BATCH)
    row = _analyze(net, data, s.SGDConfig(lr=0.1), settings=same)
    lam = float(torch.linalg.eigvalsh(_dense_hessian(net, data, batch_stats=True, batch=BATCH))[-1])
    assert row["lambda_max"] == pytest.approx(lam, rel=1e-8)
    assert row["stability_mode"] == "analysis" and "lambda_max_trained" not in row
    assert row["sharpness_lr"] == pytest.approx(0.1 * lam, rel=1e-8)
    # other batches in the analysis: the trained Hessian is computed after all
    other = _settings(batchnorm=s.BatchNormMode.train, batch_size=N)
    assert trained_hessian(other, s.SGDConfig(), net, BATCH, N) is not None
    # a net without batch norm has one loss whatever the mode and batching
    plain = nn.Sequential(nn.Linear(D_IN, CLASSES)).double()
    assert trained_hessian(_settings(), s.SGDConfig(), plain, BATCH, N) is None
    row = _analyze(plain, data, s.SGDConfig(lr=0.1))
    assert row["stability_mode"] == "analysis" and "lambda_max_trained" not in row
    assert math.isclose(row["sharpness_lr"], 0.1 * row["lambda_max"], rel_tol=1e-12)
    assert np.isfinite(row["lambda_max"])
