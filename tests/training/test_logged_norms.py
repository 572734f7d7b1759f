"""The norms of the metrics table against independent computations (issue 16 rewrote them for speed)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from hessdyn.store import RunDir, load_checkpoint
from hessdyn.training.loop import global_norm, train
from tests.training.helpers import typed_config


def test_global_norm_is_the_norm_of_the_concatenation() -> None:
    g = torch.Generator().manual_seed(0)
    tensors = [torch.randn(300, 7, generator=g) * 1e3, torch.randn(5, generator=g), torch.zeros(2, 2)]
    dense = torch.cat([t.double().flatten() for t in tensors]).norm().item()
    assert global_norm(tensors) == pytest.approx(dense, rel=1e-6)
    assert global_norm([]) == 0.0


def test_logged_norms_match_the_weights_and_plain_sgd(tmp_path: Path) -> None:
    lr = 0.05
    cfg = typed_config(
        [
            "optimizer=sgd",
            f"optimizer.lr={lr}",
            "optimizer.weight_decay=0",
            "trainer.max_steps=10",
            "trainer.log_every=5",
            "checkpoint.schedule=list",
            "checkpoint.steps=[5,10]",
        ]
    )
    train(cfg, tmp_path / "run")
    run = RunDir(tmp_path / "run")
    table = pd.read_csv(run.train_csv)
    batch = table[table.source == "batch"].set_index("step")
    # plain SGD: the update of the logged step is lr * gradient, so its norm is lr * grad_norm
    assert batch.update_norm.to_numpy() == pytest.approx(lr * batch.grad_norm.to_numpy(), rel=1e-5)
    for step in (5, 10):
        weights = load_checkpoint(dict(run.checkpoints())[step])["model"]
        dense = torch.cat([w.double().flatten() for w in weights.values()]).norm().item()
        assert batch.loc[step, "param_norm"] == pytest.approx(dense, rel=1e-6)
        evals = table[(table.source == "eval") & (table.step == step)]
        assert evals.param_norm.to_numpy() == pytest.approx(dense, rel=1e-6)
