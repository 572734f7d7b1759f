"""Per-sample factors of the cross-entropy Hessian of the smooth three-layer net (``model=three_layer``).

For one example (x, y) of the net ``z = W1 x + b1``, ``a = φ(z)``, ``f = W2 a + b2``, ``p = softmax(f)``,
``ℓ = −log p_y`` (notation of docs/flat_minima.md), write ``x̃ = [x; 1]`` and ``ã = [a; 1]`` (the ``1`` only
when the layer has a bias), ``r = p − e_y``, ``S = diag(p) − ppᵀ``, ``δ = W2ᵀ r`` and ``D = diag(φ'(z))``.
With ``U = [W1 | b1]`` and ``V = [W2 | b2]`` the per-sample Hessian has the blocks

    H_VV = S ⊗ ã ãᵀ,    H_UU = M ⊗ x̃ x̃ᵀ,   M = D W2ᵀ S W2 D + diag(φ''(z) ⊙ δ),
    H_VU[(i, j), (k, b)] = (A[i, k] ã[j] + r[i] φ'[k] [j = k]) x̃[b],   A = S W2 D,

(the full Hessian: the ``φ''`` term and the ``r`` term are what the Gauss–Newton matrix drops). This module
computes, for a block of examples, exactly the small hidden- and class-sized factors that the traces and
the pairwise Frobenius products ``⟨H_n, H_m⟩_F`` need (see :mod:`hessdyn.curvature.three_layer_traces`);
everything is plain differentiable torch, so autograd through it gives derivatives of the traces.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from hessdyn.models.mlp import SMOOTH_ACTIVATIONS, ThreeLayerNet

# torch.nn.Softplus() is linear above this input (beta = 1); the closed form follows the module exactly.
SOFTPLUS_THRESHOLD = 20.0


@dataclass(frozen=True)
class ThreeLayerParams:
    """The tensors of a :class:`~hessdyn.models.ThreeLayerNet`: ``w1`` (h, d), ``b1`` (h,) or None,
    ``w2`` (c, h), ``b2`` (c,) or None, and the activation name. They are the module's own parameters
    (autograd reaches them) unless cast with :meth:`to`."""

    w1: torch.Tensor
    b1: torch.Tensor | None
    w2: torch.Tensor
    b2: torch.Tensor | None
    activation: str
    names: tuple[str, ...]

    @property
    def hidden(self) -> int:
        return self.w1.shape[0]

    @property
    def num_classes(self) -> int:
        return self.w2.shape[0]

    @property
    def size(self) -> int:
        """P, the number of parameters."""
        return sum(t.numel() for t in (self.w1, self.b1, self.w2, self.b2) if t is not None)

    def to(self, dtype: torch.dtype) -> ThreeLayerParams:
        def cast(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(dtype)

        return ThreeLayerParams(
            cast(self.w1), cast(self.b1), cast(self.w2), cast(self.b2), self.activation, self.names
        )  # type: ignore[arg-type]


def three_layer_params(model: nn.Module) -> ThreeLayerParams:
    """The parameters of a ``three_layer`` model; TypeError for any other model.

    Every parameter must be trainable: the closed form is the Hessian over all of them.
    """
    if not isinstance(model, ThreeLayerNet):
        raise TypeError(
            f"the exact three-layer traces need a hessdyn ThreeLayerNet (model=three_layer), "
            f"got {type(model).__name__}"
        )
    if model.activation not in SMOOTH_ACTIVATIONS:
        raise ValueError(f"activation {model.activation!r} is not one of {SMOOTH_ACTIVATIONS}")
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    if frozen:
        raise ValueError(
            f"the exact traces cover all parameters, but {frozen} are frozen (requires_grad=False)"
        )
    hidden, output = model.hidden, model.output
    names = tuple(n for n, _ in model.named_parameters())
    return ThreeLayerParams(hidden.weight, hidden.bias, output.weight, output.bias, model.activation, names)


@dataclass(frozen=True)
class ActivationDerivatives:
    """φ(z), φ'(z), φ''(z), each of the shape of z."""

    value: torch.Tensor
    first: torch.Tensor
    second: torch.Tensor


def activation_derivatives(name: str, z: torch.Tensor) -> ActivationDerivatives:
    """φ and its first two derivatives for sigmoid, tanh and softplus (torch's beta=1, threshold=20)."""
    if name == "sigmoid":
        s = torch.sigmoid(z)
        d1 = s * (1 - s)
        return ActivationDerivatives(s, d1, d1 * (1 - 2 * s))
    if name == "tanh":
        t = torch.tanh(z)
        d1 = 1 - t * t
        return ActivationDerivatives(t, d1, -2 * t * d1)
    if name == "softplus":
        s = torch.sigmoid(z)
        linear = z > SOFTPLUS_THRESHOLD
        return ActivationDerivatives(
            F.softplus(z),
            torch.where(linear, torch.ones_like(s), s),
            torch.where(linear, torch.zeros_like(s), s * (1 - s)),
        )
    raise ValueError(f"no closed form for activation {name!r} (smooth ones: {SMOOTH_ACTIVATIONS})")


@dataclass(frozen=True)
class SampleFactors:
    """Factors of the per-sample Hessians H_n of one block of B examples (shapes below; c classes, h hidden).

    x_aug (B, d̃), a_aug (B, h̃): x̃_n and ã_n; r (B, c) = p_n − e_y; dphi (B, h) = φ'(z_n);
    s_packed (B, c(c+1)/2), m_packed (B, h(h+1)/2): the upper triangles of S_n and M_n, off-diagonal
        entries times √2, so that ⟨M_n, M_m⟩_F = m_packed[n] · m_packed[m] (and the same for S);
    a_flat (B, c·h): A_n = S_n W2 D_n;  b_flat (B, c·h): A_n diag(a_n);  rd_flat (B, c·h): r_n φ'_nᵀ;
    trace_s (B,) = tr S_n; trace_m (B,) = tr M_n; x_sq (B,) = ||x_n||²; a_sq (B,) = ||a_n||²;
    weight (B,) the sample weights w_n.
    """

    x_aug: torch.Tensor
    a_aug: torch.Tensor
    s_packed: torch.Tensor
    r: torch.Tensor
    dphi: torch.Tensor
    m_packed: torch.Tensor
    a_flat: torch.Tensor
    b_flat: torch.Tensor
    rd_flat: torch.Tensor
    trace_s: torch.Tensor
    trace_m: torch.Tensor
    x_sq: torch.Tensor
    a_sq: torch.Tensor
    weight: torch.Tensor


def _augment(t: torch.Tensor, with_one: bool) -> torch.Tensor:
    return torch.cat([t, torch.ones_like(t[:, :1])], dim=1) if with_one else t


def _packed_upper(mat: torch.Tensor) -> torch.Tensor:
    """(B, h, h) symmetric -> (B, h(h+1)/2): the upper triangle, off-diagonal entries scaled by √2."""
    h = mat.shape[-1]
    rows, cols = torch.triu_indices(h, h, device=mat.device)
    scale = torch.full(rows.shape, math.sqrt(2.0), dtype=mat.dtype, device=mat.device)
    scale[rows == cols] = 1.0
    return mat[:, rows, cols] * scale


def softmax_hessian(p: torch.Tensor) -> torch.Tensor:
    """S = diag(p) − ppᵀ (B, c, c) for probabilities p (B, c), with 1 − p_i of the most likely class summed
    from the other classes: no cancellation when p is nearly one-hot."""
    top = p.argmax(dim=1, keepdim=True)
    rest = p.scatter(1, top, 0.0).sum(dim=1, keepdim=True)
    complement = (1 - p).scatter(1, top, rest)
    return torch.diag_embed(p * complement) - (p[:, :, None] * p[:, None, :]) * (
        1 - torch.eye(p.shape[1], dtype=p.dtype, device=p.device)
    )


def sample_factors(
    params: ThreeLayerParams, x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor
) -> SampleFactors:
    """The factors of the examples x (B, d) (already flattened), labels y (B,), weights (B,).

    Cost O(B·(d·h + c·h²)) flops, memory O(B·h²).
    """
    w1, w2 = params.w1, params.w2
    z = x @ w1.T if params.b1 is None else torch.addmm(params.b1, x, w1.T)
    act = activation_derivatives(params.activation, z)
    logits = act.value @ w2.T if params.b2 is None else torch.addmm(params.b2, act.value, w2.T)
    p = torch.softmax(logits, dim=1)
    # r = p − e_y, with r_y = −Σ_{k≠y} p_k summed rather than p_y − 1 cancelled.
    label = y[:, None]
    r = p.scatter(1, label, -p.scatter(1, label, 0.0).sum(dim=1, keepdim=True))
    centered = w2[None] - (p @ w2)[:, None, :]  # (B, c, h): rows w_i − W2ᵀp
    delta = r @ w2  # (B, h): W2ᵀ r
    # W2ᵀ S W2 = Σ_i p_i (w_i − W2ᵀp)(w_i − W2ᵀp)ᵀ: the centered form loses no digits when p is nearly one-hot.
    curv = (centered * p[:, :, None]).transpose(1, 2) @ centered
    second = act.second * delta
    m = act.first[:, :, None] * curv * act.first[:, None, :] + torch.diag_embed(second)
    a_mat = p[:, :, None] * centered * act.first[:, None, :]  # (B, c, h): S W2 D
    trace_m = (act.first.pow(2) * torch.diagonal(curv, dim1=1, dim2=2)).sum(1) + second.sum(1)
    s_mat = softmax_hessian(p)
    return SampleFactors(
        x_aug=_augment(x, params.b1 is not None),
        a_aug=_augment(act.value, params.b2 is not None),
        s_packed=_packed_upper(s_mat),
        r=r,
        dphi=act.first,
        m_packed=_packed_upper(m),
        a_flat=a_mat.flatten(1),
        b_flat=(a_mat * act.value[:, None, :]).flatten(1),
        rd_flat=(r[:, :, None] * act.first[:, None, :]).flatten(1),
        trace_s=torch.diagonal(s_mat, dim1=1, dim2=2).sum(1),
        trace_m=trace_m,
        x_sq=x.pow(2).sum(1),
        a_sq=act.value.pow(2).sum(1),
        weight=weight,
    )
