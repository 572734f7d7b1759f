"""A test-only gradient second moment M = (1/N) Σ_n g_n g_nᵀ, standing in for the operators of
curvature/gradient_moments.py: it shows that such an operator shards like the Hessian, and that the
covariance C = M − ḡḡᵀ distributes as M plus a correction."""

from __future__ import annotations

import torch
from torch.func import grad, vmap

from hessdyn.curvature import CurvatureOperator, EmpiricalRisk


class SecondMoment(CurvatureOperator):
    """M = (1/N) Σ_n g_n g_nᵀ over the risk's N examples, g_n = ∇ℓ(f(θ, x_n), y_n) (no weight decay)."""

    mean_over_examples = True

    def __init__(self, risk: EmpiricalRisk) -> None:
        super().__init__(risk.layout, risk.dtype, risk.device, risk.mode)
        xs = torch.cat([b[0] for b in risk.batches])
        ys = torch.cat([b[1] for b in risk.batches])
        params = tuple(p.detach() for p in risk.params)

        def loss_one(ps: tuple[torch.Tensor, ...], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return risk.loss_fn(risk.outputs(ps, x[None]), y[None])

        grads = vmap(grad(loss_one), in_dims=(None, 0, 0))(params, xs, ys)
        self.gradients = risk.layout.flatten(grads)  # (N, P)

    def _matmat(self, V: torch.Tensor) -> torch.Tensor:
        G = self.gradients
        return G.T @ (G @ V) / G.shape[0]
