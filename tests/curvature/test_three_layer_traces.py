"""Exact tr(H), tr(H²) of the smooth three-layer net against the dense Hessian (and Hutch++ on real MNIST)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hessdyn.curvature import HessianMode, curvature_operator, dense_matrix
from hessdyn.curvature.three_layer_traces import three_layer_traces
from hessdyn.models import MLP, ThreeLayerNet

from .cases import assert_unchanged, reference_hessian, snapshot

ACTIVATIONS = ["sigmoid", "tanh", "softplus"]


def _net(activation: str, bias: bool, *, scale: float = 2.0, seed: int = 0, shape=(5,)) -> ThreeLayerNet:
    torch.manual_seed(seed)
    model = ThreeLayerNet(shape, 4, 3, activation=activation, bias=bias).double()
    with torch.no_grad():  # larger than the default init: confident, uneven softmax outputs
        for p in model.parameters():
            p.mul_(scale)
    return model


def _data(n: int = 11, shape=(5,), seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *shape, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (n,), generator=gen)
    weights = torch.rand(n, generator=gen, dtype=torch.float64) ** 2 + 0.01  # uneven, not normalized
    return x, y, weights


def _weighted_dense(model, x, y, weights) -> torch.Tensor:
    """The dense Hessian of Σ_n w_n ℓ_n through hessdyn's operator (one batch, so the batch share is 1)."""

    def loss_fn(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return (weights * F.cross_entropy(logits, labels, reduction="none")).sum()

    return dense_matrix(curvature_operator(model, x, y, loss_fn=loss_fn))


def _rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_traces_equal_the_dense_hessian_with_uneven_weights(activation: str, bias: bool) -> None:
    model = _net(activation, bias)
    x, y, weights = _data()
    H = _weighted_dense(model, x, y, weights)
    before = snapshot(model)
    for block_size in (1024, 4):  # one block, and three blocks of 4, 4, 3 (pairs across blocks)
        exact = three_layer_traces(model, x, y, weights=weights, block_size=block_size)
        assert _rel(exact.trace, float(H.trace())) < 1e-10
        assert _rel(exact.trace_sq, float((H * H).sum())) < 1e-10
    assert_unchanged(model, before)
    offset = 0
    for name, p in model.named_parameters():  # per-parameter diagonal blocks
        block = H.diagonal()[offset : offset + p.numel()].sum()
        assert _rel(exact.block_traces[name], float(block)) < 1e-10, name
        offset += p.numel()
    assert exact.size == H.shape[0] and exact.num_examples == x.shape[0]


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_mean_loss_and_weight_decay_match_the_hessian_operator(activation: str) -> None:
    """weights=None is the operator's mean loss; the mode's L2 term enters both traces."""
    model = _net(activation, True, seed=3)
    x, y, _ = _data(seed=4)
    for mode in (
        HessianMode(),
        HessianMode(weight_decay=0.3, decayed=("hidden",)),
        HessianMode(weight_decay=0.1),
    ):
        H = dense_matrix(curvature_operator(model, x, y, mode=mode))
        exact = three_layer_traces(model, x, y, mode=mode, block_size=5)
        assert _rel(exact.trace, float(H.trace())) < 1e-10
        assert _rel(exact.trace_sq, float((H * H).sum())) < 1e-10
        assert exact.weight_decay == mode.weight_decay


def test_against_an_independent_autograd_hessian_on_image_shaped_inputs() -> None:
    """No hessdyn curvature code in the reference: torch.autograd.functional.hessian of a hand-flattened θ."""
    model = _net("tanh", True, shape=(1, 2, 3), seed=5)
    x, y, _ = _data(n=7, shape=(1, 2, 3), seed=6)
    H = reference_hessian(model, x, y)
    exact = three_layer_traces(model, x, y)
    assert _rel(exact.trace, float(H.trace())) < 1e-10
    assert _rel(exact.trace_sq, float((H * H).sum())) < 1e-10


def test_softplus_in_its_linear_region_follows_the_module() -> None:
    """torch's Softplus is exactly linear above 20: there φ' = 1 and φ'' = 0, as in the closed form."""
    model = _net("softplus", True, scale=1.0, seed=7)
    x, y, weights = _data(seed=8)
    x = x * 40  # many pre-activations beyond ±20
    z = x @ model.hidden.weight.T + model.hidden.bias
    assert (z > 20).any() and (z.abs() < 20).any()
    H = _weighted_dense(model, x, y, weights)
    exact = three_layer_traces(model, x, y, weights=weights)
    assert _rel(exact.trace_sq, float((H * H).sum())) < 1e-10
    assert _rel(exact.trace, float(H.trace())) < 1e-10


def test_float32_model_computed_in_float64_is_unchanged() -> None:
    model = _net("sigmoid", True).float()
    x, y, _ = _data()
    before = snapshot(model)
    exact = three_layer_traces(model, x.float(), y, dtype=torch.float64)
    H = dense_matrix(curvature_operator(model, x.float(), y, dtype=torch.float64))
    assert _rel(exact.trace_sq, float((H * H).sum())) < 1e-10
    assert_unchanged(model, before)


def test_bad_inputs_are_refused() -> None:
    x, y, weights = _data()
    model = _net("tanh", True)
    with pytest.raises(TypeError, match="three_layer"):
        three_layer_traces(MLP((5,), [4], 3, activation="tanh").double(), x, y)
    relu = _net("tanh", True)
    relu.act = torch.nn.ReLU()
    with pytest.raises(ValueError, match="no closed form"):
        three_layer_traces(relu, x, y)
    with pytest.raises(ValueError, match="shape"):
        three_layer_traces(model, x, y, weights=weights[:-1])
    with pytest.raises(ValueError, match="non-negative"):
        three_layer_traces(model, x, y, weights=-weights)
    with pytest.raises(ValueError, match="block_size"):
        three_layer_traces(model, x, y, block_size=0)
    model.output.bias.requires_grad_(False)
    with pytest.raises(ValueError, match="frozen"):
        three_layer_traces(model, x, y)


@pytest.mark.slow
def test_mnist_sized_net_within_three_standard_errors_of_hutch_plus_plus(
    shared_data, tmp_path, monkeypatch
) -> None:
    """784-64-10 on 2,000 real MNIST images, briefly trained: the exact traces sit inside Hutch++'s 3-SE
    intervals for two probe seeds, and the estimates are not vacuous (their SE is below 5%)."""
    from hessdyn.config import schema as s
    from hessdyn.data import load_dataset
    from hessdyn.solvers import hutch_plus_plus

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the staged copy goes here, not ~/.cache
    data = load_dataset(
        s.MNISTConfig(root=str(shared_data), n_train=2000, n_test=100), torch.device("cpu"), torch.float32
    )
    x, y = data.train.x, data.train.y
    torch.manual_seed(0)
    model = ThreeLayerNet((1, 28, 28), 64, 10, activation="sigmoid")
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    gen = torch.Generator().manual_seed(0)
    for _ in range(100):
        idx = torch.randint(0, x.shape[0], (128,), generator=gen)
        opt.zero_grad()
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    exact = three_layer_traces(model, x, y, dtype=torch.float64)
    op = curvature_operator(model, x, y, dtype=torch.float64)
    for seed in range(2):
        est = hutch_plus_plus(op, 60, seed=seed)
        assert abs(est.trace - exact.trace) <= 3 * est.trace_se
        assert abs(est.trace_sq - exact.trace_sq) <= 3 * est.trace_sq_se
        assert est.trace_se < 0.05 * exact.trace and est.trace_sq_se < 0.05 * exact.trace_sq
