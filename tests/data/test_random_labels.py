"""dataset.random_label_fraction on every dataset: how many labels change, determinism, the test split and the
inputs untouched, and the analysis' Hessian set seeing the run's corrupted labels."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from hessdyn.config import schema as s
from hessdyn.config.errors import ConfigValueError, HessdynError
from hessdyn.data import load_dataset
from hessdyn.data.labels import labels_digest

CPU = torch.device("cpu")


def _configs(tmp_path: Path, idx_writer, cifar_writer) -> dict:
    """name -> config factory(**kw) for every dataset kind, on bundled, generated or tiny real-format files."""
    idx_root = tmp_path / "idx"
    idx_writer(idx_root / "MNIST" / "raw", n_train=400, n_test=50)
    idx_writer(idx_root / "FashionMNIST" / "raw", n_train=400, n_test=50, seed=1)
    cifar_root = tmp_path / "cifar"
    cifar_writer(cifar_root / "cifar-10-batches-py", per_file=80)
    return {
        "digits": lambda **kw: s.DigitsConfig(**kw),
        "synthetic": lambda **kw: s.SyntheticConfig(n_train=400, n_test=100, **kw),
        "mnist": lambda **kw: s.MNISTConfig(root=str(idx_root), **kw),
        "fashion_mnist": lambda **kw: s.FashionMNISTConfig(root=str(idx_root), **kw),
        "cifar10": lambda **kw: s.CIFAR10Config(root=str(cifar_root), **kw),
    }


@pytest.mark.parametrize("name", ["digits", "synthetic", "mnist", "fashion_mnist", "cifar10"])
def test_a_fraction_of_training_labels_is_redrawn_and_nothing_else_changes(
    name, tmp_path, idx_writer, cifar_writer
) -> None:
    make = _configs(tmp_path, idx_writer, cifar_writer)[name]
    clean = load_dataset(make(), CPU, torch.float32)
    noisy = load_dataset(make(random_label_fraction=0.5), CPU, torch.float32)
    again = load_dataset(make(random_label_fraction=0.5), CPU, torch.float32)
    n, c = len(clean.train), clean.num_classes
    info = noisy.info["random_labels"]
    changed = int((noisy.train.y != clean.train.y).sum())
    assert info["redrawn"] == round(0.5 * n) and info["changed"] == changed
    expected, sd = info["redrawn"] * (1 - 1 / c), math.sqrt(info["redrawn"] * (1 / c) * (1 - 1 / c))
    assert abs(changed - expected) <= 4 * sd + 1
    assert torch.equal(noisy.train.y, again.train.y)  # seeded: the same labels every time
    assert torch.equal(noisy.train.x, clean.train.x)  # inputs (and their normalization) untouched
    assert torch.equal(noisy.test.y, clean.test.y) and torch.equal(noisy.test.x, clean.test.x)
    assert noisy.info["train_labels_sha1"] == labels_digest(noisy.train.y) != clean.info["train_labels_sha1"]
    assert clean.info["random_labels"] == {"fraction": 0.0, "redrawn": 0, "changed": 0, **_seed(clean)}


def _seed(data) -> dict:
    key = "data_seed" if data.name == "synthetic" else "subset_seed"
    return {key: 0}


def test_the_draw_depends_on_the_data_seed_not_on_anything_else(tmp_path, idx_writer, cifar_writer) -> None:
    a = load_dataset(s.DigitsConfig(random_label_fraction=0.3), CPU, torch.float32)
    b = load_dataset(s.DigitsConfig(random_label_fraction=0.3, subset_seed=1), CPU, torch.float32)
    assert not torch.equal(a.train.y, b.train.y)
    torch.manual_seed(0)
    state = torch.get_rng_state()
    load_dataset(s.DigitsConfig(random_label_fraction=0.3), CPU, torch.float32)
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG (training seeds) is never used


@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_a_fraction_outside_0_1_is_one_line_naming_the_key(value) -> None:
    with pytest.raises(ConfigValueError, match=r"'dataset.random_label_fraction'.*\[0, 1\]") as info:
        s.DigitsConfig(random_label_fraction=value)
    assert "\n" not in str(info.value)


def test_cli_refuses_an_out_of_range_fraction_before_writing(run_cli, tmp_path) -> None:
    proc = run_cli("train", "dataset.random_label_fraction=2", "trainer.max_steps=2")
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert "dataset.random_label_fraction" in proc.stderr
    assert not (tmp_path / "results").exists()


def test_the_hessian_set_has_the_runs_corrupted_labels_and_run_json_records_them(tmp_path) -> None:
    from hessdyn.analysis.loading import open_run
    from hessdyn.training.loop import train
    from tests.training.helpers import typed_config

    run = tmp_path / "run"
    cfg = typed_config(
        [
            "model.widths=[4]",
            "trainer.max_steps=2",
            "dataset.n_train=300",
            "dataset.random_label_fraction=0.5",
        ]
    )
    train(cfg, run)
    record = json.loads((run / "run.json").read_text())
    assert record["dataset"]["random_labels"]["fraction"] == 0.5
    assert record["dataset"]["random_labels"]["redrawn"] == 150
    settings = typed_config(["analysis.hessian_set=100"], config_name="analyze").analysis
    ctx = open_run(run, settings, CPU)
    clean = load_dataset(s.DigitsConfig(n_train=300), CPU, torch.float32)
    hset = ctx.hessian_set
    assert torch.equal(hset.y, ctx.data.train.y[hset.indices])  # drawn from the corrupted training labels
    assert not torch.equal(hset.y, clean.train.y[hset.indices])  # ... which differ from the true ones
    assert record["dataset"]["train_labels_sha1"] == labels_digest(ctx.data.train.y)
    assert torch.equal(ctx.data.test.y, clean.test.y)
    record["dataset"]["train_labels_sha1"] = "0" * 16  # labels the dataset no longer gives: refused
    (run / "run.json").write_text(json.dumps(record))
    with pytest.raises(HessdynError, match="other training labels"):
        open_run(run, settings, CPU)


@pytest.mark.parametrize("dataset", ["digits", "synthetic"])
def test_runs_written_before_the_key_keep_their_config_hash(dataset) -> None:
    """A run's .hydra config from before random_label_fraction existed (no such key; synthetic: label_noise
    0.0) hashes as the same config now, so it resumes and is skipped as finished; a fraction > 0 is another run."""
    from omegaconf import OmegaConf

    from hessdyn.config import config_hash, hashable_config
    from tests.training.helpers import typed_config

    composed = OmegaConf.to_container(
        OmegaConf.structured(typed_config([f"dataset={dataset}"])), enum_to_str=True
    )
    before = json.loads(json.dumps(composed))
    del before["dataset"]["random_label_fraction"]
    assert config_hash(composed) == config_hash(before)
    assert "random_label_fraction" not in hashable_config(composed)["dataset"]
    changed = json.loads(json.dumps(composed))
    changed["dataset"]["random_label_fraction"] = 0.2
    assert config_hash(changed) != config_hash(composed)
