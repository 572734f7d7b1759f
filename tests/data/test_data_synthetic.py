"""synthetic: Gaussian mixture and teacher data, deterministic from data_seed, label noise semantics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hessdyn.config import schema as s
from hessdyn.config.errors import ConfigValueError
from hessdyn.data import load_dataset

CPU = torch.device("cpu")
KINDS = [s.SyntheticKind.gaussian_mixture, s.SyntheticKind.teacher]


def _load(**kw):
    return load_dataset(s.SyntheticConfig(**kw), CPU, torch.float32)


@pytest.mark.parametrize("kind", KINDS)
def test_deterministic_from_data_seed(kind) -> None:
    a, b = _load(kind=kind, data_seed=3), _load(kind=kind, data_seed=3)
    c = _load(kind=kind, data_seed=4)
    assert (
        torch.equal(a.train.x, b.train.x)
        and torch.equal(a.train.y, b.train.y)
        and torch.equal(a.test.x, b.test.x)
    )
    assert not torch.equal(a.train.x, c.train.x)
    assert a.input_shape == (20,) and a.num_classes == 4 and (len(a.train), len(a.test)) == (1024, 512)


@pytest.mark.parametrize("kind", KINDS)
def test_global_rng_is_not_used(kind) -> None:
    torch.manual_seed(123)
    state = torch.get_rng_state()
    _load(kind=kind, random_label_fraction=0.3)
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("kind", KINDS)
def test_test_set_and_task_do_not_depend_on_n_train(kind) -> None:
    small, large = _load(kind=kind, n_train=100), _load(kind=kind, n_train=300, normalize=False)
    small_raw = _load(kind=kind, n_train=100, normalize=False)
    assert torch.equal(small_raw.test.x, large.test.x) and torch.equal(small_raw.test.y, large.test.y)
    assert len(small.train) == 100 and len(large.train) == 300


def test_mixture_geometry() -> None:
    data = _load(n_train=4000, dim=50, num_classes=5, separation=6.0, normalize=False)
    x, y = data.train.x.double(), data.train.y
    assert torch.bincount(y).tolist() == [800] * 5  # balanced
    means = torch.stack([x[y == c].mean(0) for c in range(5)])
    assert torch.allclose(means.norm(dim=1), torch.full((5,), 6.0, dtype=torch.float64), atol=0.4)
    residual = x - means[y]
    assert residual.std().item() == pytest.approx(1.0, abs=0.02)  # unit within-class noise
    # well separated -> nearest-mean classification of the test set is almost perfect
    pred = torch.cdist(data.test.x.double(), means).argmin(1)
    assert (pred == data.test.y).float().mean() > 0.95


def test_teacher_labels_are_learnable_and_use_several_classes() -> None:
    data = _load(kind=s.SyntheticKind.teacher, n_train=4000, dim=10, num_classes=3, normalize=False)
    counts = torch.bincount(data.train.y, minlength=3)
    assert (counts > 200).all()
    # a linear probe on the train set beats chance clearly on the test set (tanh teacher is near-linear)
    x = torch.cat([data.train.x, torch.ones(len(data.train), 1)], 1).double()
    onehot = torch.nn.functional.one_hot(data.train.y, 3).double()
    w = torch.linalg.lstsq(x, onehot).solution
    xt = torch.cat([data.test.x, torch.ones(len(data.test), 1)], 1).double()
    assert ((xt @ w).argmax(1) == data.test.y).float().mean() > 0.75


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fraction", [0.0, 0.2, 1.0])
def test_random_label_fraction(kind, fraction: float) -> None:
    n, c = 5000, 4
    clean = _load(kind=kind, n_train=n)
    noisy = _load(kind=kind, n_train=n, random_label_fraction=fraction)
    assert torch.equal(clean.train.x, noisy.train.x)  # inputs unchanged
    assert torch.equal(clean.test.y, noisy.test.y)  # test labels always clean
    changed = int((clean.train.y != noisy.train.y).sum())
    redrawn = round(fraction * n)
    info = noisy.info["random_labels"]
    assert info["redrawn"] == redrawn and info["changed"] == changed and info["data_seed"] == 0
    expected = redrawn * (1 - 1 / c)
    sd = math.sqrt(redrawn * (1 / c) * (1 - 1 / c))
    assert abs(changed - expected) <= 4 * sd + 1e-9
    if fraction == 1.0:  # fully random labels are (close to) uniform
        assert (torch.bincount(noisy.train.y, minlength=c).float() / n - 1 / c).abs().max() < 0.03


def test_normalization_is_global_on_train() -> None:
    data = _load(separation=3.0)
    x = data.train.x.double()
    assert abs(x.mean().item()) < 1e-6 and abs(x.std(correction=0).item() - 1) < 1e-6
    assert data.info["normalization"]["per"] == "global" and len(data.info["normalization"]["mean"]) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_the_former_label_noise_key_gives_the_same_labels(kind) -> None:
    """Runs written with dataset.label_noise keep their labels: it is read as random_label_fraction."""
    old = _load(kind=kind, label_noise=0.3)
    new = _load(kind=kind, random_label_fraction=0.3)
    assert torch.equal(old.train.y, new.train.y) and old.info["random_labels"]["redrawn"] == round(0.3 * 1024)
    # the draw the label_noise code made before the rename: the data seed's fourth ("noise") stream
    stream = int(np.random.SeedSequence(0).generate_state(4, dtype=np.uint64)[3]) >> 1
    gen = torch.Generator().manual_seed(stream)
    clean = _load(kind=kind).train.y
    count = round(0.3 * len(clean))
    idx = torch.randperm(len(clean), generator=gen)[:count].sort().values
    expected = clean.clone()
    expected[idx] = torch.randint(0, 4, (count,), generator=gen)
    assert torch.equal(old.train.y, expected)
    with pytest.raises(ConfigValueError, match="dataset.label_noise"):
        _load(kind=kind, label_noise=0.3, random_label_fraction=0.2)
