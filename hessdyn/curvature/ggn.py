"""The generalized Gauss–Newton matrix G = Jᵀ·∇²ℓ·J of the mean loss, as a linear operator."""

from __future__ import annotations

import torch

from hessdyn.curvature.operator import CurvatureOperator
from hessdyn.curvature.risk import Batch, EmpiricalRisk

# (out, u, Jᵀu per parameter, z, ∇_z loss) of one batch
_Graphs = tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...], torch.Tensor, torch.Tensor]


class GGNOperator(CurvatureOperator):
    """G = Σ_b J_bᵀ·∇²_z ℓ_b·J_b (+ weight-decay term), J_b = ∂f(θ, x_b)/∂θ, ℓ_b the batch's loss share.

    For mean cross-entropy ∇²_z ℓ is (n_b/N)·(diag(p) − ppᵀ)/n_b per example, so G = (1/N) Σ_n J_nᵀ(diag(p_n) −
    p_n p_nᵀ)J_n (with the risk's sample_weights, w_n in place of 1/N). Products use only reverse mode: J·v as
    the derivative of Jᵀu with respect to u.
    """

    mean_over_examples = True

    def __init__(self, risk: EmpiricalRisk, *, cache_graph: bool = True) -> None:
        super().__init__(risk.layout, risk.dtype, risk.device, risk.mode)
        self.risk = risk
        self.cache_graph = cache_graph and len(risk.batches) == 1
        self._cached: _Graphs | None = None

    def _graphs(self, batch: Batch) -> _Graphs:
        """Output, dummy cotangent u, Jᵀu per parameter, detached output z and ∇_z loss (all with graphs)."""
        xb = batch[0]
        params = self.risk.params
        out = self.risk.outputs(params, xb)
        u = torch.zeros_like(out, requires_grad=True)
        jtu = torch.autograd.grad(
            out, params, u, create_graph=True, allow_unused=True, materialize_grads=True
        )
        z = out.detach().requires_grad_(True)
        gz = torch.autograd.grad(self.risk.output_loss(z, batch), z, create_graph=True)[0]
        return out, u, jtu, z, gz

    def _matmat(self, V: torch.Tensor) -> torch.Tensor:
        layout, params = self.layout, self.risk.params
        tangents = layout.unflatten(V.T)
        out_flat = torch.zeros(V.shape[1], layout.numel, dtype=self.dtype, device=self.device)
        for batch in self.risk.batches:
            if self.cache_graph:
                if self._cached is None:
                    self._cached = self._graphs(batch)
                graphs = self._cached
            else:
                graphs = self._graphs(batch)
            out, u, jtu, z, gz = graphs
            live = [i for i, g in enumerate(jtu) if g.requires_grad]
            if not live or not gz.requires_grad:
                continue  # a network constant in θ, or a loss linear in its outputs: G = 0
            for j in range(V.shape[1]):
                jv = torch.autograd.grad(
                    [jtu[i] for i in live], u, [tangents[i][j] for i in live], retain_graph=True
                )[0]
                hjv = torch.autograd.grad(gz, z, jv, retain_graph=True)[0]
                res = torch.autograd.grad(
                    out, params, hjv, retain_graph=True, allow_unused=True, materialize_grads=True
                )
                out_flat[j] += layout.flatten(res)
        return self.risk.add_weight_decay(out_flat.T, V)
