"""Training with HSR and SAM: the penalty logged apart from the data loss, the objective's gradient, and
resumption bit for bit (the resume tests' style: a run cut at a checkpoint and finished equals one run)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from hessdyn.config import config_hash, hashable_config
from hessdyn.store import RunDir, load_checkpoint
from hessdyn.training.hsr import hsr_penalty
from hessdyn.training.loop import train
from hessdyn.training.objective import TrainingObjective

from .helpers import typed_config

SMALL = [
    "model=three_layer",
    "model.hidden=12",
    "trainer.max_steps=36",
    "trainer.batch_size=48",
    "trainer.log_every=4",
    "trainer.eval_every=9",
    "checkpoint.schedule=every",
    "checkpoint.every=5",
]
ARMS = {
    "hsr": ["regularizer=hsr", "regularizer.beta=0.05"],
    "sam-momentum": ["optimizer=sam", "optimizer.base=momentum", "optimizer.lr=0.05"],
    "asam-adam": ["optimizer=sam", "optimizer.base=adam", "optimizer.adaptive=true", "optimizer.lr=0.003"],
    "sam-hsr-clip": ["optimizer=sam", "regularizer=hsr", "regularizer.beta=0.05", "trainer.grad_clip=1.0"],
}


def _weights(run_dir) -> dict[str, torch.Tensor]:
    return load_checkpoint(RunDir(run_dir).checkpoints()[-1][1])["model"]


def _cut_after(run_dir, step: int) -> None:
    """What a kill -9 right after checkpoint ``step`` leaves: later checkpoints gone, train.csv rows past
    it still there (a resume drops them), run.json still ``running``."""
    run = RunDir(run_dir)
    for s, path in run.checkpoints():
        if s > step:
            path.unlink()
    record = run.read_record()
    run.write_record({**record, "status": "running", "steps": step})


@pytest.mark.parametrize("arm", sorted(ARMS))
def test_cut_and_resumed_run_equals_the_uninterrupted_one_bit_for_bit(tmp_path, arm: str) -> None:
    cfg = typed_config([*SMALL, *ARMS[arm]])
    train(cfg, tmp_path / "ref")
    train(cfg, tmp_path / "cut")
    _cut_after(tmp_path / "cut", 15)
    result = train(cfg, tmp_path / "cut")
    assert result.status == "completed"
    ref, resumed = _weights(tmp_path / "ref"), _weights(tmp_path / "cut")
    assert all(torch.equal(ref[k], resumed[k]) for k in ref)
    assert json.loads(RunDir(tmp_path / "cut").run_json.read_text())["resumes"] == [15]
    a = pd.read_csv(RunDir(tmp_path / "ref").train_csv)
    b = pd.read_csv(RunDir(tmp_path / "cut").train_csv)
    numbers = ["loss", "accuracy", "grad_norm", "update_norm", "penalty", "batch_ws_bound"]
    pd.testing.assert_frame_equal(
        a[["step", "split", "source", *numbers]], b[["step", "split", "source", *numbers]]
    )


def test_train_csv_keeps_the_data_loss_and_the_penalty_apart(tmp_path) -> None:
    beta = 0.05
    cfg = typed_config([*SMALL, "regularizer=hsr", f"regularizer.beta={beta}", "trainer.batch_size=2000"])
    train(cfg, tmp_path / "run")  # full batch: every batch row is one exactly reproducible minibatch
    table = pd.read_csv(RunDir(tmp_path / "run").train_csv)
    batch = table[table.source == "batch"]
    assert batch.penalty.notna().all() and batch.batch_ws_bound.notna().all()
    assert table[table.source == "eval"].penalty.isna().all()
    assert batch.penalty.to_numpy() == pytest.approx(beta * batch.batch_ws_bound.to_numpy(), rel=1e-6)
    # the first update (log_every=4: rows average 4 updates; redo the first row's 4 updates by hand)
    run = RunDir(tmp_path / "run")
    ckpt = load_checkpoint(run.checkpoint_path(0))
    from hessdyn.data import load_dataset
    from hessdyn.models import build_model

    data = load_dataset(cfg.dataset, torch.device("cpu"), torch.float32)
    model = build_model(cfg.model, data.input_shape, data.num_classes)
    model.load_state_dict(ckpt["model"])
    opt = torch.optim.SGD(model.parameters(), lr=cfg.optimizer.lr)
    losses, penalties = [], []
    for _ in range(4):
        term = hsr_penalty(model, data.train.x, data.train.y, beta)
        loss = F.cross_entropy(term.logits, data.train.y)
        opt.zero_grad()
        (loss + term.penalty).backward()
        opt.step()
        losses.append(float(loss.detach()))
        penalties.append(float(term.penalty.detach()))
    first = batch.sort_values("step").iloc[0]
    assert first.loss == pytest.approx(sum(losses) / 4, rel=1e-5)
    assert first.penalty == pytest.approx(sum(penalties) / 4, rel=1e-5)
    plain = train(typed_config([*SMALL, "trainer.batch_size=2000"]), tmp_path / "plain")
    assert plain.status == "completed"
    assert pd.read_csv(RunDir(tmp_path / "plain").train_csv).penalty.isna().all()


def test_the_objective_gradient_is_data_loss_plus_penalty() -> None:
    cfg = typed_config(["model=three_layer", "model.hidden=6", "regularizer=hsr", "regularizer.beta=0.3"])
    torch.manual_seed(0)
    from hessdyn.models import build_model

    model = build_model(cfg.model, (1, 8, 8), 10).double()
    x, y = torch.randn(20, 1, 8, 8, dtype=torch.float64), torch.randint(0, 10, (20,))
    objective = TrainingObjective(model, cfg.regularizer, grad_clip=None, batch_size=20)
    terms = objective.backward(x, y)
    got = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    # independent: the data loss from the model's own forward, the bound from the float trace formula
    data = F.cross_entropy(model(x), y)
    penalty = hsr_penalty(model, x, y, 0.3).penalty
    want = torch.autograd.grad(data + penalty, list(model.parameters()))
    assert terms.loss == pytest.approx(float(data.detach()), rel=1e-12)
    assert terms.penalty == pytest.approx(float(penalty.detach()), rel=1e-12)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)


def test_an_hsr_batch_too_large_for_its_b_by_b_matrices_is_one_line_before_training(tmp_path) -> None:
    from hessdyn.config.errors import ConfigValueError

    cfg = typed_config(["model=three_layer", "regularizer=hsr", "trainer.batch_size=null"])
    model = torch.nn.Linear(2, 2)
    TrainingObjective(model, cfg.regularizer, None, batch_size=4096)
    with pytest.raises(ConfigValueError, match=r"'trainer.batch_size': regularizer=hsr forms batch × batch"):
        TrainingObjective(model, cfg.regularizer, None, batch_size=4097)
    TrainingObjective(model, typed_config([]).regularizer, None, batch_size=60000)  # no penalty: no limit


def test_runs_without_a_regularizer_keep_the_hash_of_runs_trained_before_the_group_existed() -> None:
    cfg = typed_config(["optimizer=adam"])
    plain = hashable_config(_as_dict(cfg))
    assert "regularizer" not in plain
    old = _as_dict(cfg)
    del old["regularizer"]  # a run.json written before the regularizer group existed
    assert config_hash(old) == config_hash(_as_dict(cfg))
    hsr = typed_config(["model=three_layer", "regularizer=hsr"])
    assert hashable_config(_as_dict(hsr))["regularizer"] == {"name": "hsr", "beta": 0.01}


def test_a_run_from_before_the_regularizer_group_loads_and_resumes_keeping_its_rows(tmp_path) -> None:
    from omegaconf import OmegaConf

    from hessdyn.training.metrics_log import COLUMNS
    from hessdyn.training.run_config import load_run_config

    cfg = typed_config([*SMALL, "trainer.max_steps=12"])
    run = RunDir(tmp_path / "old")
    train(cfg, run.path)
    raw = OmegaConf.load(run.hydra_config)
    del raw["regularizer"]
    OmegaConf.save(raw, run.hydra_config)
    assert load_run_config(run.path).regularizer.name == "none"
    old_columns = [c for c in COLUMNS if c not in ("penalty", "batch_ws_bound")]
    table = pd.read_csv(run.train_csv)
    table[old_columns].to_csv(run.train_csv, index=False)  # the header an older hessdyn wrote
    _cut_after(run.path, 10)
    longer = typed_config([*SMALL, "trainer.max_steps=12"])
    assert train(longer, run.path).status == "completed"
    resumed = pd.read_csv(run.train_csv)
    assert list(resumed.columns) == list(COLUMNS)
    kept = resumed[resumed.step <= 10][old_columns].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, table[table.step <= 10][old_columns].reset_index(drop=True))


def _as_dict(cfg) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.structured(cfg), enum_to_str=True)
