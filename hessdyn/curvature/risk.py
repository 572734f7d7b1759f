"""The empirical risk of a model on a fixed Hessian set: the one place that owns data, weighting and mode.

The caller's module is never mutated: the risk works on a private deep copy whose train/eval flags are set
by the Hessian mode, and evaluates it with `torch.func.functional_call` on detached parameter copies.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap
from torch.nn.modules.batchnorm import _BatchNorm

from hessdyn.curvature.mode import HessianMode
from hessdyn.curvature.params import ParamLayout

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# (x_b, y_b, share): share is the float n_b / N (uniform weights: the batch's mean loss is scaled by it), or
# the batch's (n_b,) tensor of per-sample weights w_n (explicit weights: Σ_n w_n ℓ_n).
Batch = tuple[torch.Tensor, torch.Tensor, float | torch.Tensor]


@dataclass(frozen=True)
class HessianSet:
    """A fixed set of examples: inputs x (N, ...), integer labels y (N,), and their indices in the source."""

    x: torch.Tensor
    y: torch.Tensor
    indices: torch.Tensor


def select_hessian_set(x: torch.Tensor, y: torch.Tensor, n: int | None, seed: int = 0) -> HessianSet:
    """The first `n` examples of a seeded permutation, kept in source order; n=None or n >= N keeps all."""
    total = x.shape[0]
    if y.shape[0] != total:
        raise ValueError(f"x has {total} examples but y has {y.shape[0]}")
    if n is None or n >= total:
        idx = torch.arange(total)
    else:
        if n < 1:
            raise ValueError(f"Hessian set size must be >= 1, got {n}")
        gen = torch.Generator().manual_seed(seed)
        idx = torch.randperm(total, generator=gen)[:n].sort().values
    dev_idx = idx.to(x.device)
    return HessianSet(x=x[dev_idx], y=y[idx.to(y.device)], indices=idx)


def cast_model(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """A deep copy of `model` with floating parameters and buffers cast to `dtype`; `model` is untouched."""
    return copy.deepcopy(model).to(dtype)


def has_batchnorm(model: nn.Module) -> bool:
    """Whether ``model`` normalizes with batch norm anywhere: then its loss depends on the Hessian mode's
    ``batchnorm`` (running or batch statistics) and, in train mode, on how the examples are batched."""
    return any(isinstance(m, _BatchNorm) for m in model.modules())


def _configure_copy(model: nn.Module, mode: HessianMode, dtype: torch.dtype | None) -> nn.Module:
    module = copy.deepcopy(model)
    if dtype is not None:
        module = module.to(dtype)
    # eval() everywhere turns off dropout and any other train-only randomness; BatchNorm is then
    # switched back on explicitly when the mode asks for batch statistics.
    module.eval()
    for sub in module.modules():
        if isinstance(sub, _BatchNorm) and mode.batchnorm == "train":
            sub.train()
            # With tracking off, F.batch_norm receives no running buffers, so nothing is updated.
            sub.track_running_stats = False
    for p in module.parameters():
        p.requires_grad_(False)
    return module


@dataclass(frozen=True)
class LossGradient:
    """Mean loss over the Hessian set (float) and its flat gradient (P,) in layout order."""

    loss: float
    gradient: torch.Tensor


class EmpiricalRisk:
    """Mean loss over a Hessian set as a function of the selected parameters.

    L(θ) = Σ_b (n_b / N) · loss_fn(f(θ, x_b), y_b)  [+ (c/2)·||θ_decayed||² with c = mode.weight_decay],
    so with batchnorm="eval" the value and its derivatives do not depend on `batch_size`.

    sample_weights: optional (N,) relative weights of the examples (finite, >= 0, not all 0), normalized
        here to w_n summing to 1; the data term becomes Σ_n w_n ℓ_n with ℓ_n = loss_fn on example n alone
        (so loss_fn must be the batch mean of per-example losses, as cross-entropy and MSE are). None means
        w_n = 1/N through the mean above. Every operator built on this risk (Hessian, GGN, gradient moments)
        uses the same weights.
    """

    def __init__(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        loss_fn: LossFn | None = None,
        batch_size: int | None = None,
        params: Sequence[str] | None = None,
        mode: HessianMode | None = None,
        dtype: torch.dtype | None = None,
        sample_weights: torch.Tensor | None = None,
    ) -> None:
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"x has {x.shape[0]} examples but y has {y.shape[0]}")
        if x.shape[0] == 0:
            raise ValueError("the Hessian set is empty")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 or None, got {batch_size}")
        self.mode = mode if mode is not None else HessianMode()
        self.loss_fn: LossFn = loss_fn if loss_fn is not None else F.cross_entropy
        self.layout = ParamLayout.from_model(model, params)
        self.module = _configure_copy(model, self.mode, dtype)
        named = dict(self.module.named_parameters())
        self.params: tuple[torch.Tensor, ...] = tuple(
            named[n].detach().clone().requires_grad_(True) for n in self.layout.names
        )
        self.dtype = self.params[0].dtype
        self.device = self.params[0].device
        x = x.to(self.device, dtype=self.dtype) if x.is_floating_point() else x.to(self.device)
        y = y.to(self.device)
        n_total = x.shape[0]
        size = n_total if batch_size is None else batch_size
        self.sample_weights = _normalized_weights(sample_weights, n_total, self.dtype, self.device)
        weights = self.sample_weights
        self.batches: tuple[Batch, ...] = tuple(
            (
                x[i : i + size],
                y[i : i + size],
                min(size, n_total - i) / n_total if weights is None else weights[i : i + size],
            )
            for i in range(0, n_total, size)
        )
        self.num_examples = n_total
        self.decay_mask: torch.Tensor | None = None
        if self.mode.weight_decay > 0:
            select = self.mode.decayed if self.mode.decayed is not None else self.layout.names
            self.decay_mask = self.layout.mask(select, dtype=self.dtype, device=self.device)

    @property
    def size(self) -> int:
        return self.layout.numel

    def refresh(self, model: nn.Module) -> None:
        """Take the current parameter and buffer values of ``model`` (the module this risk was built from, or
        one of the same structure) without copying the module again: one risk followed along training.

        Operators that kept a gradient graph of the old values must be rebuilt (``HessianOperator`` is cheap
        to make). ``model`` is only read."""
        named = dict(model.named_parameters())
        with torch.no_grad():
            for own, name in zip(self.params, self.layout.names, strict=True):
                own.copy_(named[name])
            for own_buffer, buffer in zip(self.module.buffers(), model.buffers(), strict=True):
                own_buffer.copy_(buffer)

    def outputs(self, params: Sequence[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """Network outputs f(θ, x) with θ given as per-parameter tensors in layout order."""
        out: torch.Tensor = functional_call(
            self.module, dict(zip(self.layout.names, params, strict=True)), (x,)
        )
        return out

    def batch_loss(self, params: Sequence[torch.Tensor], batch: Batch) -> torch.Tensor:
        """This batch's share of the data term, (n_b / N) · mean loss or Σ_{n in b} w_n ℓ_n; no weight decay."""
        return self.output_loss(self.outputs(params, batch[0]), batch)

    def output_loss(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        """The batch's share of the data term as a function of the network outputs (n_b, ...) of its inputs."""
        _, yb, share = batch
        if isinstance(share, torch.Tensor):
            return (self.per_example_losses(outputs, yb) * share).sum()
        return self.loss_fn(outputs, yb) * share

    def per_example_losses(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(n,) losses ℓ_n = loss_fn(outputs[n:n+1], y[n:n+1]), each example alone (vmapped, one pass)."""

        def one(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            return self.loss_fn(output.unsqueeze(0), target.unsqueeze(0))

        losses: torch.Tensor = vmap(one)(outputs, y)
        return losses

    def example_weights(self, batch: Batch) -> torch.Tensor:
        """(n_b,) weights w_n of the batch's examples in the data term (1/N each unless sample_weights)."""
        xb, _, share = batch
        if isinstance(share, torch.Tensor):
            return share
        n_b = xb.shape[0]
        return torch.full((n_b,), share / n_b, dtype=self.dtype, device=self.device)

    def flat_params(self) -> torch.Tensor:
        """θ as a flat (P,) vector in the risk's dtype."""
        return self.layout.flatten([p.detach() for p in self.params])

    def loss_at(self, theta: torch.Tensor) -> torch.Tensor:
        """L(θ) at a flat (P,) θ in layout order, differentiable with respect to θ: the flat-θ view of this
        risk (same data, weighting, mode and weight-decay term), for functions of θ such as ε-sharpness.

        The risk's own parameters are not used or changed; θ may be any point (e.g. θ + δ in a box).
        """
        if theta.shape != (self.size,):
            raise ValueError(f"expected a ({self.size},) parameter vector, got {tuple(theta.shape)}")
        params = self.layout.unflatten(theta)
        total: torch.Tensor = sum(
            (self.batch_loss(params, batch) for batch in self.batches), theta.new_zeros(())
        )
        if self.decay_mask is not None:
            total = total + 0.5 * self.mode.weight_decay * (self.decay_mask * theta).pow(2).sum()
        return total

    def add_weight_decay(self, out: torch.Tensor, vecs: torch.Tensor) -> torch.Tensor:
        """out + c·mask⊙vecs for (P,) or (P, m) tensors: the L2 term's share of a curvature product."""
        if self.decay_mask is None:
            return out
        mask = self.decay_mask if vecs.dim() == 1 else self.decay_mask[:, None]
        return out + self.mode.weight_decay * mask * vecs

    def loss_and_gradient(self, *, include_weight_decay: bool = True) -> LossGradient:
        """Mean loss (float) and its flat gradient (P,), weight-decay term included when the mode has one
        (include_weight_decay=False: the data term alone)."""
        total = torch.zeros(self.size, dtype=self.dtype, device=self.device)
        loss = 0.0
        for batch in self.batches:
            value = self.batch_loss(self.params, batch)
            grads = torch.autograd.grad(value, self.params, allow_unused=True, materialize_grads=True)
            total += self.layout.flatten(grads)
            loss += float(value.detach())
        if self.decay_mask is not None and include_weight_decay:
            theta = self.flat_params()
            total = self.add_weight_decay(total, theta)
            loss += 0.5 * self.mode.weight_decay * float((self.decay_mask * theta).pow(2).sum())
        return LossGradient(loss=loss, gradient=total)


def _normalized_weights(
    weights: torch.Tensor | None, n: int, dtype: torch.dtype, device: torch.device
) -> torch.Tensor | None:
    """(N,) weights scaled to sum to 1, in the risk's dtype and device; None stays None (uniform)."""
    if weights is None:
        return None
    w = torch.as_tensor(weights).detach().to(device=device, dtype=torch.float64).reshape(-1)
    if w.shape[0] != n:
        raise ValueError(f"sample_weights has {w.shape[0]} entries for {n} examples")
    if not bool(torch.isfinite(w).all()) or bool((w < 0).any()) or float(w.sum()) <= 0:
        raise ValueError("sample_weights must be finite and non-negative with a positive sum")
    return (w / w.sum()).to(dtype)
