"""The training-time sharpness probe: its numbers against dense Hessians, the training state it must not
touch, its warm start across checkpoints, and its place in the loop."""

from __future__ import annotations

import copy

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from hessdyn.config import schema as s
from hessdyn.config.errors import ConfigValueError, HessdynError
from hessdyn.data import DatasetSplits, TensorSplit, load_dataset
from hessdyn.models import build_model
from hessdyn.store import RunDir, load_checkpoint
from hessdyn.training.loop import train
from hessdyn.training.optimizers import build_optimizer
from hessdyn.training.sharpness_probe import SharpnessProbe, check_probe_config

DATA = s.SyntheticConfig(n_train=60, n_test=20, dim=5, num_classes=3)


def _cfg(optimizer: s.OptimizerConfig | None = None, batch_size: int | None = 16, **probe) -> s.TrainConfig:
    probe.setdefault("every", 1)
    probe.setdefault("tol", 1e-9)
    probe.setdefault("max_hvps", 2000)
    return s.TrainConfig(
        model=s.MLPConfig(widths=[6], activation=s.Activation.tanh),
        dataset=DATA,
        optimizer=optimizer or s.SGDConfig(lr=0.1),
        schedule=s.ConstantScheduleConfig(),
        trainer=s.TrainerConfig(max_steps=12, batch_size=batch_size, sharpness=s.SharpnessConfig(**probe)),
        checkpoint=s.CheckpointConfig(schedule=s.CheckpointSchedule.every, every=4),
        device=s.Device.cpu,
        dtype=s.DType.float64,
    )


def _setup(cfg: s.TrainConfig, steps: int = 5, seed: int = 0):
    """Data, a model and its optimizer after ``steps`` full-batch updates (float64)."""
    data = load_dataset(cfg.dataset, torch.device("cpu"), torch.float64)
    torch.manual_seed(seed)
    model = build_model(cfg.model, data.input_shape, data.num_classes).double()
    opt = build_optimizer(cfg.optimizer, model.parameters())
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(data.train.x), data.train.y).backward()
        opt.step()
    return data, model, opt


def _dense_hessian(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int | None = None
) -> torch.Tensor:
    """The Hessian of the mean cross-entropy over (x, y) with torch.autograd.functional.hessian, on a copy
    (batch norm in training mode: batch statistics of consecutive batches of ``batch``, weighted by size)."""
    work = copy.deepcopy(model)
    names = [n for n, _ in work.named_parameters()]
    shapes = [p.shape for _, p in work.named_parameters()]
    theta = torch.cat([p.detach().reshape(-1) for p in work.parameters()])
    buffers = {n: b.clone() for n, b in work.named_buffers()}
    size = batch or x.shape[0]

    def loss(flat: torch.Tensor) -> torch.Tensor:
        params, offset = {}, 0
        for name, shape in zip(names, shapes, strict=True):
            params[name] = flat[offset : offset + shape.numel()].reshape(shape)
            offset += shape.numel()
        total = flat.new_zeros(())
        for i in range(0, x.shape[0], size):
            out = functional_call(
                work, {**params, **{k: v.clone() for k, v in buffers.items()}}, (x[i : i + size],)
            )
            total = total + F.cross_entropy(out, y[i : i + size]) * (min(size, x.shape[0] - i) / x.shape[0])
        return total

    return torch.autograd.functional.hessian(loss, theta)


def _top(matrix: torch.Tensor, k: int) -> torch.Tensor:
    return torch.linalg.eigvalsh(0.5 * (matrix + matrix.T)).flip(0)[:k]


# ----------------------------------------------------------------------------------- the numbers
def test_eigenvalues_are_those_of_the_dense_hessian_of_the_probe_set_with_coupled_weight_decay():
    cfg = _cfg(s.SGDConfig(lr=0.1, weight_decay=0.01), top_k=3, set=25, set_seed=4)
    data, model, opt = _setup(cfg)
    probe = SharpnessProbe(cfg, data.train, model, batch_size=16)
    measured = probe(5, model, opt, lr=0.1)
    idx = probe.set.indices
    assert idx.shape == (25,) and bool((idx.diff() > 0).all())  # a seeded subset, in split order
    x, y = data.train.x[idx], data.train.y[idx]
    # SGD's weight_decay adds c·θ to the gradient: the loss it descends is L + (c/2)||θ||², Hessian H + cI
    expected = _top(
        _dense_hessian(model, x, y) + 0.01 * torch.eye(sum(p.numel() for p in model.parameters())), 3
    )
    torch.testing.assert_close(measured.hessian.eigenvalues, expected, rtol=1e-8, atol=0)
    rows = measured.rows()
    assert [(r["step"], r["operator"], r["rank"]) for r in rows] == [(5, "hessian", k) for k in (1, 2, 3)]
    assert all(r["converged"] and r["residual"] <= 1e-9 * float(expected[0]) for r in rows)
    assert all(r["threshold"] == pytest.approx(2 / 0.1) and r["lr"] == 0.1 for r in rows)
    assert all(r["hvps"] == measured.hessian.num_hvps > 0 for r in rows)


def test_adamw_decay_is_not_in_the_hessian_and_the_whole_split_is_the_default_set():
    cfg = _cfg(s.AdamWConfig(lr=0.01, weight_decay=0.5), top_k=1)
    data, model, opt = _setup(cfg)
    probe = SharpnessProbe(cfg, data.train, model, batch_size=16)
    assert probe.provenance()["set_indices"] == "all" and probe.provenance()["set_size"] == 60
    measured = probe(0, model, opt, lr=0.01)
    expected = _top(_dense_hessian(model, data.train.x, data.train.y), 1)
    torch.testing.assert_close(measured.hessian.eigenvalues, expected, rtol=1e-8, atol=0)


def test_adam_preconditioned_sharpness_against_a_hand_built_bias_corrected_preconditioner():
    beta1, beta2, eps, lr = 0.9, 0.99, 1e-8, 0.01
    cfg = _cfg(s.AdamConfig(lr=lr, beta1=beta1, beta2=beta2, eps=eps), top_k=2, preconditioned=True)
    data, model, opt = _setup(cfg, steps=4)
    probe = SharpnessProbe(cfg, data.train, model, batch_size=16)
    measured = probe(4, model, opt, lr=lr)
    # Cohen et al. 2022: P_t = (1 - β1^t)·(sqrt(v_t / (1 - β2^t)) + ε), t = 4 updates
    diag = []
    for p in model.parameters():
        state = opt.state[p]
        t = float(state["step"])
        diag.append(((1 - beta1**t) * ((state["exp_avg_sq"] / (1 - beta2**t)).sqrt() + eps)).reshape(-1))
    d = torch.cat(diag).rsqrt()
    H = _dense_hessian(model, data.train.x, data.train.y)
    expected = _top(d[:, None] * H * d[None, :], 2)
    assert measured.preconditioned is not None
    torch.testing.assert_close(measured.preconditioned.eigenvalues, expected, rtol=1e-8, atol=0)
    torch.testing.assert_close(measured.hessian.eigenvalues, _top(H, 2), rtol=1e-8, atol=0)
    rows = measured.rows()
    pre = [r for r in rows if r["operator"] == "preconditioned"]
    assert [r["rank"] for r in pre] == [1, 2]
    assert all(r["threshold"] == pytest.approx((2 + 2 * beta1) / ((1 - beta1) * lr)) for r in pre)
    assert all(r["threshold"] is None for r in rows if r["operator"] == "hessian")  # no claim for raw H


def test_adam_has_no_preconditioned_rows_before_its_first_update_and_sgd_none_at_all():
    cfg = _cfg(s.AdamConfig(lr=0.01), preconditioned=True)
    data, model, opt = _setup(cfg, steps=0)
    probe = SharpnessProbe(cfg, data.train, model, batch_size=16)
    assert {r["operator"] for r in probe(0, model, opt, lr=0.01).rows()} == {"hessian"}
    sgd = _cfg(s.SGDConfig(lr=0.1), preconditioned=True)
    assert SharpnessProbe(sgd, data.train, model, batch_size=16).operators == ("hessian",)


class _BNNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(5, 7)
        self.norm = nn.BatchNorm1d(7)
        self.output = nn.Linear(7, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(torch.tanh(self.norm(self.hidden(x))))


def _bn_setup():
    data = load_dataset(DATA, torch.device("cpu"), torch.float64)
    torch.manual_seed(1)
    model = _BNNet().double()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for i in range(3):  # a few steps, so running statistics and momentum buffers are not at their start
        opt.zero_grad()
        F.cross_entropy(
            model(data.train.x[i * 16 : (i + 1) * 16]), data.train.y[i * 16 : (i + 1) * 16]
        ).backward()
        opt.step()
    return data, model, opt


def test_batch_norm_probe_is_the_hessian_with_batch_statistics_over_training_sized_batches():
    data, model, opt = _bn_setup()
    cfg = _cfg(s.MomentumConfig(lr=0.1, momentum=0.9), top_k=2)
    probe = SharpnessProbe(cfg, data.train, model, batch_size=16)
    assert probe.batch_size == 16 and probe.mode.batchnorm == "train"
    measured = probe(3, model, opt, lr=0.1)
    expected = _top(_dense_hessian(model.train(), data.train.x, data.train.y, batch=16), 2)
    torch.testing.assert_close(measured.hessian.eigenvalues, expected, rtol=1e-8, atol=0)
    eval_mode = _top(_dense_hessian(model.eval(), data.train.x, data.train.y), 2)
    assert not torch.allclose(eval_mode, expected, rtol=1e-3)  # the running-statistics Hessian differs
    assert measured.rows()[0]["threshold"] == pytest.approx((2 + 2 * 0.9) / 0.1)


# ------------------------------------------------------------------------ the state it must not touch
def _snapshot(model: nn.Module, opt: torch.optim.Optimizer) -> dict:
    return {
        "model": {k: v.clone() for k, v in model.state_dict().items()},
        "grads": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "training": [m.training for m in model.modules()],
        "optimizer": copy.deepcopy(opt.state_dict()),
        "rng": torch.get_rng_state(),
    }


def _assert_same(a: dict, b: dict) -> None:
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])  # weights and BN statistics
    assert all(
        (x is None and y is None) or torch.equal(x, y) for x, y in zip(a["grads"], b["grads"], strict=True)
    )
    assert a["training"] == b["training"]
    assert torch.equal(a["rng"], b["rng"])
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert sa.keys() == sb.keys()
    for key in sa:
        assert sa[key].keys() == sb[key].keys()
        assert all(torch.equal(torch.as_tensor(sa[key][n]), torch.as_tensor(sb[key][n])) for n in sa[key])
    assert a["optimizer"]["param_groups"] == b["optimizer"]["param_groups"]


@pytest.mark.parametrize("training", [True, False], ids=["train-mode", "eval-mode"])
def test_probe_leaves_weights_bn_statistics_mode_grads_optimizer_and_rng_untouched(training):
    data, model, opt = _bn_setup()
    model.train(training)
    generator = torch.Generator().manual_seed(5)
    gen_state = generator.get_state()
    cfg = _cfg(s.MomentumConfig(lr=0.1, momentum=0.9), top_k=2, guard_steps=3)
    probe = SharpnessProbe(cfg, data.train, model, batch_size=16)
    before = _snapshot(model, opt)
    for step in (3, 4):  # cold, then warm
        probe(step, model, opt, lr=0.1)
    _assert_same(before, _snapshot(model, opt))
    assert torch.equal(generator.get_state(), gen_state)


def test_adam_state_is_only_read_by_the_preconditioned_probe():
    cfg = _cfg(s.AdamConfig(lr=0.01), preconditioned=True, top_k=2)
    data, model, opt = _setup(cfg, steps=3)
    model.hidden0.weight.grad = torch.ones_like(model.hidden0.weight)
    probe = SharpnessProbe(cfg, data.train, model, batch_size=16)
    before = _snapshot(model, opt)
    probe(3, model, opt, lr=0.01)
    probe(4, model, opt, lr=0.01)
    _assert_same(before, _snapshot(model, opt))


# ------------------------------------------------------------------------------- the warm start
def test_warm_start_is_carried_by_the_state_and_continues_bit_for_bit():
    cfg = _cfg(s.AdamConfig(lr=0.02), top_k=2, preconditioned=True, tol=1e-4)
    data, model, opt = _setup(cfg, steps=1)
    first = SharpnessProbe(cfg, data.train, model, batch_size=16)
    sequence, saved = [], None
    for step in range(1, 7):
        opt.zero_grad()
        F.cross_entropy(model(data.train.x), data.train.y).backward()
        opt.step()
        sequence.append(
            (copy.deepcopy(model), copy.deepcopy(opt.state_dict()), first(step, model, opt, 0.02))
        )
        if step == 3:
            saved = copy.deepcopy(first.state())
    cold = [m.hessian.num_hvps for _, _, m in sequence]
    assert cold[0] > max(cold[1:])  # the first probe starts cold, the later ones from the previous vectors
    second = SharpnessProbe(cfg, data.train, model, batch_size=16)
    second.restore(saved, where=RunDir("x").checkpoint_path(3))
    for step, (weights, state, reference) in zip(range(4, 7), sequence[3:], strict=True):
        resumed_opt = torch.optim.Adam(weights.parameters(), lr=0.02)
        resumed_opt.load_state_dict(state)
        again = second(step, weights, resumed_opt, 0.02)
        assert again.rows() == [{**r, "wall_s": again.wall_s[r["operator"]]} for r in reference.rows()]
    other = _cfg(s.AdamConfig(lr=0.02), set=30)
    with pytest.raises(HessdynError, match="another probe set"):
        SharpnessProbe(other, data.train, model, batch_size=16).restore(
            saved, where=RunDir("x").checkpoint_path(3)
        )


# ------------------------------------------------------------------------------------- bad input
def test_sizes_are_checked_against_the_model_and_the_split_before_anything_runs():
    cfg = _cfg(top_k=6 * 5 + 6 + 3 * 6 + 3 + 1)  # one more than the 57 parameters
    with pytest.raises(ConfigValueError, match=r"'trainer.sharpness.top_k': must be <= the model's 57"):
        check_probe_config(cfg)
    with pytest.raises(ConfigValueError, match=r"'trainer.sharpness.set': must be <= the 60 examples"):
        check_probe_config(_cfg(set=61))
    check_probe_config(_cfg(set=60, top_k=57))
    data, model, _ = _setup(_cfg(), steps=0)
    with pytest.raises(ConfigValueError, match="trainer.sharpness.set"):
        SharpnessProbe(_cfg(set=61), data.train, model, batch_size=16)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("every", 0, "must be > 0 steps (null turns the probe off), got 0"),
        ("every", -3, "must be > 0 steps"),
        ("top_k", 0, "must be > 0, got 0"),
        ("set", 0, "must be > 0, got 0"),
        ("tol", 0.0, "must be > 0"),
        ("max_hvps", 0, "must be >= trainer.sharpness.top_k"),
    ],
)
def test_schema_refuses_bad_values_naming_the_key(key, value, message):
    with pytest.raises(ConfigValueError) as err:
        s.SharpnessConfig(**{"every": 1, key: value})
    assert str(err.value).startswith(f"invalid value for 'trainer.sharpness.{key}': {message}")


# ------------------------------------------------------------------------------- in the loop
def _final(run_dir) -> dict:
    return load_checkpoint(RunDir(run_dir).checkpoints()[-1][1])


def test_probing_does_not_change_the_trajectory(tmp_path):
    base = dict(optimizer=s.AdamConfig(lr=0.02), batch_size=16)
    off = _cfg(**base, every=None)
    off.model.dropout = 0.2  # dropout draws from the global RNG every step: any draw by the probe would show
    on = _cfg(**base, every=2, top_k=2, preconditioned=True, guard_steps=2, tol=1e-3)
    on.model.dropout = 0.2
    train(off, tmp_path / "off")
    train(on, tmp_path / "on")
    a, b = _final(tmp_path / "off"), _final(tmp_path / "on")
    assert a["step"] == b["step"] == 12
    for part in ("model", "rng", "sampler"):
        assert a[part].keys() == b[part].keys()
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part] if torch.is_tensor(a[part][k]))
    for key, state in a["optimizer"]["state"].items():
        assert all(torch.equal(state[n], b["optimizer"]["state"][key][n]) for n in state)
    assert "sharpness" in b and "sharpness" not in a
    table = pd.read_csv(RunDir(tmp_path / "on").sharpness_csv)
    assert sorted(set(table.step)) == list(range(0, 13, 2))
    assert set(table[table.step == 0].operator) == {"hessian"}  # Adam has no P before its first update
    assert set(table[table.step == 2].operator) == {"hessian", "preconditioned"}
    assert not RunDir(tmp_path / "off").sharpness_csv.exists()


def test_probing_a_batch_norm_net_does_not_change_its_trajectory_or_statistics(tmp_path):
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(48, 3, 8, 8, generator=gen), torch.randint(0, 4, (48,), generator=gen)
    data = DatasetSplits("random", TensorSplit(x, y), TensorSplit(x[:8], y[:8]), (3, 8, 8), 4)
    cfgs = []
    for every in (None, 1):
        cfg = _cfg(s.MomentumConfig(lr=0.05, momentum=0.9), every=every, set=16, tol=1e-3)
        cfg.model = s.WideResNetConfig(depth=8, width=1)
        cfg.dtype = s.DType.float32
        cfg.trainer.max_steps = 4
        cfgs.append(cfg)
    train(cfgs[0], tmp_path / "off", data=data)
    train(cfgs[1], tmp_path / "on", data=data)
    a, b = _final(tmp_path / "off")["model"], _final(tmp_path / "on")["model"]
    assert any("running_mean" in k for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a)  # weights and running statistics
    table = pd.read_csv(RunDir(tmp_path / "on").sharpness_csv)
    assert list(table.step) == [0, 1, 2, 3, 4] and (table.eigenvalue > 0).all()


def test_probe_settings_enter_the_config_hash_only_when_the_probe_is_on():
    from hessdyn.config import config_hash, hashable_config

    plain = {"trainer": {"max_steps": 5, "sharpness": {"every": None, "top_k": 1}}, "seed": 0}
    assert "sharpness" not in hashable_config(plain)["trainer"]
    assert config_hash(plain) == config_hash({"trainer": {"max_steps": 5}, "seed": 0})
    on = {"trainer": {"max_steps": 5, "sharpness": {"every": 2, "top_k": 1}}, "seed": 0}
    other = {"trainer": {"max_steps": 5, "sharpness": {"every": 2, "top_k": 2}}, "seed": 0}
    assert len({config_hash(plain), config_hash(on), config_hash(other)}) == 3


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["trainer.sharpness.every=0"], "invalid value for 'trainer.sharpness.every': must be > 0 steps"),
        (["trainer.sharpness.top_k=-1"], "invalid value for 'trainer.sharpness.top_k': must be > 0, got -1"),
        (  # the default MLP 64-64 on digits has 8,970 parameters
            ["trainer.sharpness.every=5", "trainer.sharpness.top_k=8971"],
            "invalid value for 'trainer.sharpness.top_k': must be <= the model's 8970 trainable parameters",
        ),
        (  # digits has 1,347 training images
            ["trainer.sharpness.every=5", "trainer.sharpness.set=1348"],
            "invalid value for 'trainer.sharpness.set': must be <= the 1347 examples of the training split",
        ),
        (
            ["trainer.sharpness.every=5", "dataset.n_train=500", "trainer.sharpness.set=501"],
            "must be <= the 500 examples",
        ),
    ],
)
def test_preflight_refuses_bad_probe_settings_in_one_line(overrides, message):
    from hessdyn.commands.preflight import preflight
    from hessdyn.training.command import check_train_job

    with pytest.raises(HessdynError) as err:
        preflight("train", overrides, multirun=False, check=check_train_job)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_bad_probe_in_one_job_of_a_sweep_stops_the_sweep_before_any_job():
    from hessdyn.commands.preflight import preflight
    from hessdyn.training.command import check_train_job

    overrides = ["model.widths=[4]", "trainer.sharpness.every=1", "trainer.sharpness.top_k=300,400"]
    with pytest.raises(HessdynError, match="model's 310 trainable parameters, got 400"):
        preflight("train", overrides, multirun=True, check=check_train_job)


def test_cli_bad_probe_is_one_line_and_writes_nothing(run_cli, tmp_path):
    proc = run_cli("train", "trainer.sharpness.every=2", "trainer.sharpness.set=99999")
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode != 0 and len(lines) == 1, proc.stderr
    assert "trainer.sharpness.set" in lines[0] and "1347 examples" in lines[0]
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_resume_after_kill_9_repeats_the_probe_sequence_bit_for_bit(tmp_path):
    import json
    import os
    import signal
    import time

    from .test_train import _final_weights, _run_dir, _spawn_train

    args = [
        "trainer.max_steps=120",
        "trainer.batch_size=32",
        "model.widths=[16]",
        "model.dropout=0.1",
        "optimizer=adam",
        "optimizer.lr=0.005",
        "checkpoint.schedule=every",
        "checkpoint.every=7",
        "trainer.log_every=5",
        "trainer.eval_every=30",
        "trainer.sharpness.every=2",
        "trainer.sharpness.top_k=2",
        "trainer.sharpness.set=96",
        "trainer.sharpness.preconditioned=true",
        "trainer.sharpness.guard_steps=1",
        "hydra.run.dir=${oc.env:HESSDYN_RESULTS}/default/probe",  # the overrides would make too long a name
    ]
    ref_env = {**os.environ, "HESSDYN_RESULTS": str(tmp_path / "ref")}
    assert _spawn_train(args, ref_env).wait(timeout=600) == 0
    reference = pd.read_csv(RunDir(_run_dir(tmp_path / "ref")).sharpness_csv)

    env = {**os.environ, "HESSDYN_RESULTS": str(tmp_path / "killed")}
    kills = 0
    for wanted_rows in (10, 60, 150):  # rows of sharpness.csv: kill between and during probes
        proc = _spawn_train(args, env)
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            found = list((tmp_path / "killed").rglob("sharpness.csv"))
            if found and len(found[0].read_text().splitlines()) > wanted_rows:
                break
            time.sleep(0.005)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            kills += 1
        if json.loads((_run_dir(tmp_path / "killed") / "run.json").read_text())["status"] == "completed":
            break
    assert kills >= 1
    assert _spawn_train(args, env).wait(timeout=600) == 0
    run_dir = _run_dir(tmp_path / "killed")
    assert json.loads((run_dir / "run.json").read_text())["resumes"]
    table = pd.read_csv(RunDir(run_dir).sharpness_csv)
    keys = ["step", "operator", "rank"]
    assert not table.duplicated(keys).any()
    assert sorted(set(table.step)) == list(range(0, 121, 2))
    assert len(table) == len(reference)
    merged = reference.merge(table, on=keys, suffixes=("_ref", ""))
    assert len(merged) == len(reference)
    for column in ("eigenvalue", "residual", "converged", "hvps", "threshold", "lr"):
        pd.testing.assert_series_equal(merged[column], merged[f"{column}_ref"], check_names=False)
    final, ref_weights = _final_weights(run_dir), _final_weights(_run_dir(tmp_path / "ref"))
    assert all(torch.equal(final[k], ref_weights[k]) for k in final)


def test_resuming_from_the_step_0_checkpoint_writes_no_row_twice(tmp_path):
    """A run killed after its first checkpoint (step 0) resumes from it: the step-0 evaluation and probe
    are in the tables already and must not be written again (regression: they were, in train.csv too)."""
    cfg = _cfg(s.AdamConfig(lr=0.02), every=3, top_k=2, preconditioned=True, tol=1e-4)
    cfg.checkpoint = s.CheckpointConfig(schedule=s.CheckpointSchedule.list, steps=[0])
    train(cfg, tmp_path / "ref")
    train(cfg, tmp_path / "killed")
    run = RunDir(tmp_path / "killed")
    last_step, last = run.checkpoints()[-1]
    assert last_step == 12
    last.unlink()  # as if killed between the checkpoints of step 0 and step 12
    run.write_record({**run.read_record(), "status": "running"})
    train(cfg, tmp_path / "killed")
    for name in ("train", "sharpness"):
        ref = pd.read_csv(RunDir(tmp_path / "ref").metrics_table(name)).drop(columns="wall_s")
        got = pd.read_csv(run.metrics_table(name)).drop(columns="wall_s")
        pd.testing.assert_frame_equal(got, ref)


def test_edge_of_stability_and_lr_sweep_probe_every_arm_at_full_batch(tmp_path, monkeypatch):
    """The experiments the issue asks for: edge_of_stability's five arms (GD at three rates, Adam at two)
    are full batch with the probe on; lr_sweep has a full-batch arm for each optimizer and rate."""
    from hessdyn.config import to_object
    from hessdyn.pipeline.command import plan

    monkeypatch.setenv("HESSDYN_RESULTS", str(tmp_path))
    arms = [to_object(job.cfg) for job in plan(["experiment=edge_of_stability"])]
    got = sorted((c.optimizer.name, c.optimizer.lr) for c in arms)
    assert got == [("adam", 0.001), ("adam", 0.003), ("sgd", 0.05), ("sgd", 0.1), ("sgd", 0.2)]
    assert all(c.trainer.batch_size is None and c.trainer.sharpness.every == 5 for c in arms)
    assert all(c.trainer.sharpness.preconditioned and c.trainer.sharpness.set is None for c in arms)
    sweep = [to_object(job.cfg) for job in plan(["experiment=lr_sweep"])]
    full = {(c.optimizer.name, c.optimizer.lr) for c in sweep if c.trainer.batch_size is None}
    assert len(sweep) == 24 and len(full) == 12
    assert all(c.trainer.sharpness.enabled for c in sweep)
