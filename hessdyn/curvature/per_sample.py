"""Per-example pieces of an `EmpiricalRisk`: chunks of examples with their weights, per-example losses and
per-example gradients, for the gradient-moment operators and their exact diagonals.

The data term of the risk is Σ_n w_n ℓ_n(θ) (w_n = 1/N unless the risk has sample_weights), with
ℓ_n = loss_fn(f(θ, x_n), y_n) for example n alone. Per-example gradients g_n = ∇ℓ_n exist only when each
ℓ_n depends on its own example alone: batch norm with batch statistics (mode.batchnorm="train") couples the
examples of a batch, and is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.func import functional_call, grad, vmap
from torch.nn.modules.batchnorm import _BatchNorm

from hessdyn.curvature.risk import EmpiricalRisk


class PerSampleGradientsUndefined(ValueError):
    """Per-example gradients do not exist for this risk (batch norm on batch statistics)."""


@dataclass(frozen=True)
class ExampleChunk:
    """Examples processed together: inputs x (n, ...), labels y (n,), their weights w (n,) in the data term."""

    x: torch.Tensor
    y: torch.Tensor
    weights: torch.Tensor

    @property
    def size(self) -> int:
        return int(self.x.shape[0])


def require_per_sample_gradients(risk: EmpiricalRisk) -> None:
    """Raise PerSampleGradientsUndefined (one line, naming the setting) unless per-example gradients exist,
    and ValueError unless loss_fn is the batch mean of per-example losses (checked on a few examples)."""
    if risk.mode.batchnorm == "train" and any(isinstance(m, _BatchNorm) for m in risk.module.modules()):
        raise PerSampleGradientsUndefined(
            "per-sample gradients are not defined with batch norm on batch statistics "
            "(analysis.batchnorm=train): each example's loss depends on its whole batch; "
            "set analysis.batchnorm=eval to normalize with the running statistics"
        )
    x, y = risk.batches[0][0][:4], risk.batches[0][1][:4]
    with torch.no_grad():
        outputs = risk.outputs(risk.params, x)
        mean = risk.loss_fn(outputs, y)
        per_example = risk.per_example_losses(outputs, y)
    tol = 1e-10 if risk.dtype == torch.float64 else 1e-5
    if per_example.shape != (x.shape[0],) or not torch.allclose(
        per_example.mean(), mean, rtol=tol, atol=tol * float(mean.abs()) + 1e-30
    ):
        raise ValueError(
            "loss_fn is not the mean of per-example losses (loss_fn(z, y) != mean_n loss_fn(z[n:n+1], y[n:n+1])), "
            "so the gradient moments of its examples are not defined"
        )


def example_chunks(risk: EmpiricalRisk, chunk_size: int | None = None) -> tuple[ExampleChunk, ...]:
    """The risk's batches, each cut into chunks of at most `chunk_size` examples (None: whole batches)."""
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1 or None, got {chunk_size}")
    chunks = []
    for batch in risk.batches:
        xb, yb = batch[0], batch[1]
        wb = risk.example_weights(batch)
        step = xb.shape[0] if chunk_size is None else chunk_size
        for i in range(0, xb.shape[0], step):
            chunks.append(ExampleChunk(xb[i : i + step], yb[i : i + step], wb[i : i + step]))
    return tuple(chunks)


def per_example_losses(
    risk: EmpiricalRisk, params: tuple[torch.Tensor, ...], chunk: ExampleChunk
) -> torch.Tensor:
    """(n,) unweighted losses ℓ_n of the chunk's examples at `params` (graph kept to `params`)."""
    return risk.per_example_losses(risk.outputs(params, chunk.x), chunk.y)


def per_sample_gradients(risk: EmpiricalRisk, chunk: ExampleChunk) -> torch.Tensor:
    """(n, P) gradients g_n = ∇ℓ_n of the chunk's examples (data term only, unweighted), layout order.

    torch.func vmap over grad: memory n × P plus n copies of one example's activations.
    """
    names = risk.layout.names
    primals = tuple(p.detach() for p in risk.params)

    def loss_one(params: tuple[torch.Tensor, ...], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        outputs = functional_call(risk.module, dict(zip(names, params, strict=True)), (x.unsqueeze(0),))
        return risk.loss_fn(outputs, y.unsqueeze(0))

    grads = vmap(grad(loss_one), in_dims=(None, 0, 0))(primals, chunk.x, chunk.y)
    return risk.layout.flatten(grads)


def decay_gradient(risk: EmpiricalRisk) -> torch.Tensor | None:
    """d = c·mask⊙θ, the weight-decay term's gradient (P,), shared by every stochastic gradient; None without."""
    if risk.decay_mask is None:
        return None
    theta = risk.flat_params()
    return risk.add_weight_decay(torch.zeros_like(theta), theta)
