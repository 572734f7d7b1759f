"""Adam / RMSprop preconditioner diagonals rebuilt from optimizer state dicts."""

from __future__ import annotations

import io

import pytest
import torch

from hessdyn.trajectory import adam_preconditioner, optimizer_param_ids, rmsprop_preconditioner


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2)).double()


def _train(model, optimizer, steps: int = 4) -> list[list[torch.Tensor]]:
    """A few steps on seeded data; returns the gradients of every step, per parameter in model order."""
    generator = torch.Generator().manual_seed(1)
    history = []
    for _ in range(steps):
        x = torch.randn(16, 3, generator=generator, dtype=torch.float64)
        y = torch.randint(0, 2, (16,), generator=generator)
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        history.append([p.grad.clone() for p in model.parameters()])
        optimizer.step()
    return history


def _manual_adam(history, betas: tuple[float, float], eps: float, amsgrad: bool = False) -> torch.Tensor:
    """Cohen et al. 2022's ``P_t = (1 − β1^t)(sqrt(v_t / (1 − β2^t)) + ε)``, from the gradients by hand."""
    beta1, beta2 = betas
    t = len(history)
    pieces = []
    for index in range(len(history[0])):
        v = torch.zeros_like(history[0][index])
        v_max = torch.zeros_like(v)
        for grads in history:
            v = beta2 * v + (1 - beta2) * grads[index] ** 2
            v_max = torch.maximum(v_max, v)
        second = v_max if amsgrad else v
        pieces.append(((1 - beta1**t) * (torch.sqrt(second / (1 - beta2**t)) + eps)).reshape(-1))
    return torch.cat(pieces)


@pytest.mark.parametrize("steps", [1, 4])
@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("optimizer_class", [torch.optim.Adam, torch.optim.AdamW])
def test_adam_preconditioner_equals_manual_second_moments(optimizer_class, amsgrad, steps):
    model = _model()
    optimizer = optimizer_class(model.parameters(), lr=0.01, betas=(0.8, 0.95), eps=1e-3, amsgrad=amsgrad)
    history = _train(model, optimizer, steps=steps)
    result = adam_preconditioner(optimizer.state_dict(), list(model.parameters()))
    expected = _manual_adam(history, betas=(0.8, 0.95), eps=1e-3, amsgrad=amsgrad)
    torch.testing.assert_close(result.diagonal, expected, rtol=1e-12, atol=0)
    assert result.diagonal.shape == (sum(p.numel() for p in model.parameters()),)


def test_adam_preconditioner_after_one_step_is_one_minus_beta1_times_abs_gradient():
    # t = 1: v̂_1 = g², so P_1 = (1 − β1)(|g| + ε): 0.1·(|g| + ε) at β1 = 0.9, ten times below sqrt(v̂) + ε
    model = _model()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01, betas=(0.9, 0.999), eps=1e-6)
    (grads,) = _train(model, optimizer, steps=1)
    result = adam_preconditioner(optimizer.state_dict(), list(model.parameters()))
    expected = torch.cat([0.1 * (g.abs() + 1e-6).reshape(-1) for g in grads])
    torch.testing.assert_close(result.diagonal, expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("steps", [1, 2, 5])
def test_adam_step_is_preconditioned_ema_momentum(steps):
    # with P_t as defined, torch's Adam step is exactly θ_t − θ_{t−1} = −η P_t⁻¹ m_t (m_t = exp_avg)
    model = _model()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05, betas=(0.9, 0.99), eps=1e-4)
    _train(model, optimizer, steps=steps - 1)
    before = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    _train(model, optimizer, steps=1)
    after = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    state = optimizer.state_dict()
    diagonal = adam_preconditioner(state, list(model.parameters())).diagonal
    m = torch.cat([state["state"][i]["exp_avg"].reshape(-1) for i in range(4)])
    torch.testing.assert_close(after - before, -0.05 * m / diagonal, rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("momentum", [0.0, 0.7])
def test_rmsprop_step_is_preconditioned_heavy_ball_without_bias_correction(momentum):
    # torch's RMSprop: b_t = β b_{t−1} + g_t / P_t, θ_t = θ_{t−1} − η b_t, P_t = sqrt(v_t) + ε, no (1 − α^t)
    model = _model()
    optimizer = torch.optim.RMSprop(model.parameters(), lr=0.01, alpha=0.9, eps=1e-3, momentum=momentum)
    history = _train(model, optimizer, steps=2)
    before = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    history += _train(model, optimizer, steps=1)
    after = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    diagonal = rmsprop_preconditioner(optimizer.state_dict(), list(model.parameters())).diagonal
    if momentum == 0.0:
        step = torch.cat([g.reshape(-1) for g in history[-1]]) / diagonal
    else:
        step = torch.cat(
            [optimizer.state_dict()["state"][i]["momentum_buffer"].reshape(-1) for i in range(4)]
        )
    torch.testing.assert_close(after - before, -0.01 * step, rtol=1e-10, atol=1e-15)


def test_param_groups_in_another_order_are_mapped_by_id():
    model = _model()
    w1, b1, w2, b2 = model.parameters()
    optimizer = torch.optim.Adam(
        [{"params": [w2, b2], "eps": 1e-2}, {"params": [b1, w1], "betas": (0.5, 0.7)}],
        lr=0.01,
        betas=(0.9, 0.9),
    )
    history = _train(model, optimizer)
    params = list(model.parameters())
    ids = optimizer_param_ids(optimizer, params)
    assert ids == [3, 2, 0, 1]
    result = adam_preconditioner(optimizer.state_dict(), params, param_ids=ids)
    first = _manual_adam([g[:2] for g in history], betas=(0.5, 0.7), eps=1e-8)
    second = _manual_adam([g[2:] for g in history], betas=(0.9, 0.9), eps=1e-2)
    torch.testing.assert_close(result.diagonal, torch.cat([first, second]), rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match="shape"):  # default ids assume model order
        adam_preconditioner(optimizer.state_dict(), params)


def test_state_dict_after_save_and_load_and_with_string_keys():
    model = _model()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    _train(model, optimizer)
    buffer = io.BytesIO()
    torch.save(optimizer.state_dict(), buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    shapes = [p.shape for p in model.parameters()]
    expected = adam_preconditioner(optimizer.state_dict(), list(model.parameters())).diagonal
    torch.testing.assert_close(adam_preconditioner(loaded, shapes).diagonal, expected, rtol=0, atol=0)
    stringly = {
        "state": {str(k): v for k, v in loaded["state"].items()},
        "param_groups": loaded["param_groups"],
    }
    torch.testing.assert_close(adam_preconditioner(stringly, shapes).diagonal, expected, rtol=0, atol=0)


@pytest.mark.parametrize("centered", [False, True])
def test_rmsprop_preconditioner_equals_manual(centered):
    model = _model()
    optimizer = torch.optim.RMSprop(model.parameters(), lr=0.01, alpha=0.9, eps=1e-3, centered=centered)
    history = _train(model, optimizer)
    pieces = []
    for index in range(4):
        v = torch.zeros_like(history[0][index])
        mean = torch.zeros_like(v)
        for grads in history:
            v = 0.9 * v + 0.1 * grads[index] ** 2
            mean = 0.9 * mean + 0.1 * grads[index]
        pieces.append((torch.sqrt(v - mean**2 if centered else v) + 1e-3).reshape(-1))
    result = rmsprop_preconditioner(optimizer.state_dict(), list(model.parameters()))
    torch.testing.assert_close(result.diagonal, torch.cat(pieces), rtol=1e-12, atol=0)
    torch.testing.assert_close(result.inverse_sqrt(), torch.cat(pieces).rsqrt())
    with pytest.raises(ValueError, match="not an Adam"):
        adam_preconditioner(optimizer.state_dict(), list(model.parameters()))


def test_missing_state_is_reported():
    model = _model()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    with pytest.raises(ValueError, match="no optimizer state"):
        adam_preconditioner(optimizer.state_dict(), list(model.parameters()))
