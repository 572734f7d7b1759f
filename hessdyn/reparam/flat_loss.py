"""A model's loss as a function of its flat parameter vector, and the exact Hessian of that function.

Evaluated with ``torch.func.functional_call``: the model's parameters are never written to, and the model's
mode (train/eval) is left as the caller set it. ``FlatLoss.hessian()`` is a plain double-backward
:class:`~hessdyn.curvature.CurvatureOperator` at any θ (not only the model's own parameters), for sharpness
measures on tiny nets and tests; the analysis passes the curvature package's faster operator instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.func import functional_call

from hessdyn.curvature.operator import CurvatureOperator
from hessdyn.curvature.params import ParamLayout

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Batch = tuple[torch.Tensor, torch.Tensor]


class FlatLoss:
    """``L(θ) = Σ_b (n_b / N) · loss_fn(f(x_b; θ), y_b)`` for a mean-reduced ``loss_fn``.

    ``θ`` is the flat ``(P,)`` vector of the trainable parameters in ``model.named_parameters()`` order
    (the package's flat order); frozen parameters and buffers are taken from the model as they are.
    """

    def __init__(
        self,
        model: nn.Module,
        batches: Sequence[Batch],
        loss_fn: LossFn = nn.functional.cross_entropy,
    ) -> None:
        if not batches:
            raise ValueError("no data batches given")
        self.model = model
        self.batches = list(batches)
        self.loss_fn = loss_fn
        named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        if not named:
            raise ValueError("model has no trainable parameters")
        self.names = tuple(name for name, _ in named)
        self.shapes = tuple(p.shape for _, p in named)
        self.theta = torch.cat([p.detach().reshape(-1) for _, p in named]).clone()
        total = sum(x.shape[0] for x, _ in self.batches)
        self.weights = [x.shape[0] / total for x, _ in self.batches]

    @property
    def size(self) -> int:
        return self.theta.shape[0]

    def unflatten(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        """Split a flat ``(P,)`` vector into named tensors (views, so gradients flow back to ``theta``)."""
        if theta.shape != (self.size,):
            raise ValueError(f"expected a ({self.size},) parameter vector, got {tuple(theta.shape)}")
        tensors, offset = {}, 0
        for name, shape in zip(self.names, self.shapes, strict=True):
            numel = shape.numel()
            tensors[name] = theta[offset : offset + numel].view(shape)
            offset += numel
        return tensors

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        """The scalar loss at ``theta`` (differentiable with respect to it)."""
        return sum(self.weighted_batch_losses(theta), theta.new_zeros(()))

    def weighted_batch_losses(self, theta: torch.Tensor) -> list[torch.Tensor]:
        """``(n_b / N) · loss_b(θ)`` per batch; they sum to ``L(θ)``."""
        return [self.weighted_batch_loss(theta, batch) for batch in range(len(self.batches))]

    def weighted_batch_loss(self, theta: torch.Tensor, batch: int) -> torch.Tensor:
        """``(n_b / N) · loss_b(θ)`` for batch index ``batch``."""
        x, y = self.batches[batch]
        output = functional_call(self.model, self.unflatten(theta), (x,))
        return self.weights[batch] * self.loss_fn(output, y)

    def value_and_gradient(self, theta: torch.Tensor) -> tuple[float, torch.Tensor]:
        """``(L(θ), ∇L(θ))`` with the gradient detached, shape ``(P,)``."""
        theta = theta.detach().requires_grad_(True)
        loss = self(theta)
        (gradient,) = torch.autograd.grad(loss, theta)
        return float(loss), gradient

    def hessian(self, theta: torch.Tensor | None = None) -> LossHessian:
        """The exact Hessian ``∇²L`` at ``theta`` (default: the model's current parameters)."""
        return LossHessian(self, self.theta if theta is None else theta)


class LossHessian(CurvatureOperator):
    """``∇²L(θ)`` by double backward, one batch at a time (memory of one batch's double-backward graph)."""

    def __init__(self, loss: FlatLoss, theta: torch.Tensor) -> None:
        theta = theta.detach().clone()
        super().__init__(ParamLayout(loss.names, loss.shapes), theta.dtype, theta.device)
        if theta.shape != (self.size,):
            raise ValueError(f"expected a ({self.size},) parameter vector, got {tuple(theta.shape)}")
        self.loss = loss
        self.theta = theta

    def _matmat(self, V: torch.Tensor) -> torch.Tensor:
        product = torch.zeros_like(V)
        for batch in range(len(self.loss.batches)):
            theta = self.theta.clone().requires_grad_(True)
            (gradient,) = torch.autograd.grad(
                self.loss.weighted_batch_loss(theta, batch), theta, create_graph=True
            )
            for j in range(V.shape[1]):
                (column,) = torch.autograd.grad(gradient @ V[:, j], theta, retain_graph=j + 1 < V.shape[1])
                product[:, j] += column
        return product
