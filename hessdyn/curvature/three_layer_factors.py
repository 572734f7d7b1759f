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

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# torch.nn.Softplus() is linear above this input (beta = 1); the closed form follows the module exactly.
SOFTPLUS_THRESHOLD = 20.0
ACTIVATION_NAMES: dict[type[nn.Module], str] = {
    nn.Sigmoid: "sigmoid",
    nn.Tanh: "tanh",
    nn.Softplus: "softplus",
}
SMOOTH_ACTIVATIONS: tuple[str, ...] = tuple(ACTIVATION_NAMES.values())


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
            self.w1.to(dtype), cast(self.b1), self.w2.to(dtype), cast(self.b2), self.activation, self.names
        )


def three_layer_params(model: nn.Module) -> ThreeLayerParams:
    """The parameters of a ``three_layer`` net; TypeError for any other model.

    Recognized by structure, not by class (so this package needs no import of hessdyn.models): an
    ``nn.Sequential`` whose children are ``flatten`` (nn.Flatten from dim 1), ``hidden`` (nn.Linear),
    ``act`` (nn.Sigmoid, nn.Tanh, or nn.Softplus with torch's default beta = 1, threshold = 20) and
    ``output`` (nn.Linear), as :class:`hessdyn.models.ThreeLayerNet` builds it. Every parameter must be
    trainable: the closed form is the Hessian over all of them.
    """
    children = dict(model.named_children()) if isinstance(model, nn.Sequential) else {}
    flatten, hidden, output = children.get("flatten"), children.get("hidden"), children.get("output")
    if not (
        list(children) == ["flatten", "hidden", "act", "output"]
        and isinstance(flatten, nn.Flatten)
        and (flatten.start_dim, flatten.end_dim) == (1, -1)
        and isinstance(hidden, nn.Linear)
        and isinstance(output, nn.Linear)
    ):
        raise TypeError(
            "the exact traces need a three_layer net (children flatten, hidden, act, output), "
            f"got {type(model).__name__}"
        )
    act = children["act"]
    name = ACTIVATION_NAMES.get(type(act))
    if name is None or (
        isinstance(act, nn.Softplus) and (act.beta, act.threshold) != (1.0, SOFTPLUS_THRESHOLD)
    ):
        raise ValueError(
            f"no closed form for activation {act!r} (smooth ones: {', '.join(SMOOTH_ACTIVATIONS)})"
        )
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    if frozen:
        raise ValueError(
            f"the exact traces cover all parameters, but {frozen} are frozen (requires_grad=False)"
        )
    names = tuple(n for n, _ in model.named_parameters())
    return ThreeLayerParams(hidden.weight, hidden.bias, output.weight, output.bias, name, names)


def is_three_layer(model: nn.Module) -> bool:
    """Whether :func:`three_layer_params` accepts ``model`` (a three_layer net, smooth activation, all
    parameters trainable), i.e. whether its exact traces exist."""
    try:
        three_layer_params(model)
    except (TypeError, ValueError):
        return False
    return True


@dataclass(frozen=True)
class ActivationDerivatives:
    """φ(z), φ'(z), φ''(z), each of the shape of z."""

    value: torch.Tensor
    first: torch.Tensor
    second: torch.Tensor


def activation_third_derivative(name: str, z: torch.Tensor) -> torch.Tensor:
    """The third derivative of φ at z for sigmoid, tanh and softplus (0 in softplus' linear region)."""
    if name == "sigmoid":
        s = torch.sigmoid(z)
        return s * (1 - s) * (1 - 6 * s * (1 - s))
    if name == "tanh":
        t = torch.tanh(z)
        return -2 * (1 - t * t) * (1 - 3 * t * t)
    if name == "softplus":
        s = torch.sigmoid(z)
        return torch.where(z > SOFTPLUS_THRESHOLD, torch.zeros_like(s), s * (1 - s) * (1 - 2 * s))
    raise ValueError(f"no closed form for activation {name!r} (smooth ones: {', '.join(SMOOTH_ACTIVATIONS)})")


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
    raise ValueError(f"no closed form for activation {name!r} (smooth ones: {', '.join(SMOOTH_ACTIVATIONS)})")


@dataclass(frozen=True)
class SampleFactors:
    """Factors of the per-sample Hessians H_n of one block of B examples (shapes below; c classes, h hidden).

    logits (B, c): the net's outputs f(x_n) (the model's forward, graph attached);
    x_aug (B, d̃), a_aug (B, h̃): x̃_n and ã_n; r (B, c) = p_n − e_y; dphi (B, h) = φ'(z_n);
    s_packed (B, c(c+1)/2): the upper triangle of S_n, off-diagonal entries times √2, so that
        ⟨S_n, S_m⟩_F = s_packed[n] · s_packed[m];
    a_mat (B, c, h): A_n = S_n W2 D_n;  v_mat (B, c, h): V_n = (W2 − 1 g_nᵀ) D_n with g_n = W2ᵀp_n, so that
        A_n = diag(p_n) V_n and D_n W2ᵀ S_n W2 D_n = A_nᵀ V_n = V_nᵀ diag(p_n) V_n (a sum of c PSD terms);
    act_curv (B, h) = φ''(z_n) ⊙ δ_n, so M_n = G_n + diag(act_curv_n) with G_n = A_nᵀ V_n (:meth:`g_blocks`);
    b_flat (B, c·h): A_n diag(a_n);  rd_flat (B, c·h): r_n φ'_nᵀ;
    trace_s (B,) = tr S_n; trace_m (B,) = tr M_n; x_sq (B,) = ||x_n||²; a_sq (B,) = ||a_n||²;
    weight (B,) the sample weights w_n.
    """

    logits: torch.Tensor
    x_aug: torch.Tensor
    a_aug: torch.Tensor
    s_packed: torch.Tensor
    r: torch.Tensor
    dphi: torch.Tensor
    a_mat: torch.Tensor
    v_mat: torch.Tensor
    act_curv: torch.Tensor
    b_flat: torch.Tensor
    rd_flat: torch.Tensor
    trace_s: torch.Tensor
    trace_m: torch.Tensor
    x_sq: torch.Tensor
    a_sq: torch.Tensor
    weight: torch.Tensor

    @property
    def a_flat(self) -> torch.Tensor:
        """(B, c·h): A_n flattened, so ⟨A_n, A_m⟩_F = a_flat[n] · a_flat[m]."""
        return self.a_mat.flatten(1)

    @functools.cached_property
    def g_diag(self) -> torch.Tensor:
        """(B, h): the diagonal of G_n = A_nᵀ V_n = D_n W2ᵀ S_n W2 D_n (M_n without its φ'' term)."""
        return (self.a_mat * self.v_mat).sum(1)

    @functools.cached_property
    def g_blocks(self) -> tuple[torch.Tensor, ...]:
        """Feature blocks of G_n = A_nᵀ V_n whose Gram matrices sum to ⟨G_n, G_m⟩_F: with the hidden units
        split in halves, (B, h1·h) = [G11 | √2·G12] and (B, h2²) = G22 (G21 = G12ᵀ counted by the √2).
        Two batched products and no gather: 3h²/4 numbers per example instead of h² (or the h(h+1)/2 of a
        packed triangle, whose gather and scale cost more memory traffic than they save)."""
        a, v = self.a_mat, self.v_mat
        h = v.shape[2]
        h1 = h // 2
        blocks = [torch.bmm(a[:, :, h1:].transpose(1, 2), v[:, :, h1:]).flatten(1)]  # G22
        if h1:
            scale = torch.ones(h, dtype=v.dtype, device=v.device)
            scale[h1:] = math.sqrt(2.0)
            blocks.insert(0, torch.bmm(a[:, :, :h1].transpose(1, 2), v * scale).flatten(1))
        return tuple(blocks)


def _augment(t: torch.Tensor, with_one: bool) -> torch.Tensor:
    return torch.cat([t, torch.ones_like(t[:, :1])], dim=1) if with_one else t


@dataclass(frozen=True)
class PackedLayout:
    """Upper-triangle positions of an n×n symmetric matrix: ``rows``, ``cols`` (n(n+1)/2,), ``diagonal`` (n,)
    the positions of the diagonal entries, ``scale`` 1 on the diagonal and √2 off it, so that for packed
    p(X) = X[rows, cols]·scale, ⟨X, Y⟩_F = p(X)·p(Y) for symmetric X, Y."""

    rows: torch.Tensor
    cols: torch.Tensor
    diagonal: torch.Tensor
    scale: torch.Tensor


@functools.lru_cache(maxsize=16)
def packed_layout(n: int, dtype: torch.dtype, device: torch.device) -> PackedLayout:
    """The packing of n×n symmetric matrices (cached: read-only constants)."""
    rows, cols = torch.triu_indices(n, n, device=device)
    on_diagonal = rows == cols
    scale = torch.full(rows.shape, math.sqrt(2.0), dtype=dtype, device=device)
    scale[on_diagonal] = 1.0
    return PackedLayout(rows, cols, on_diagonal.nonzero()[:, 0], scale)


def packed_outer_columns(vectors: torch.Tensor, layout: PackedLayout) -> torch.Tensor:
    """For the columns v_k of ``vectors`` (n, K): the packed outer products p(v_k v_kᵀ) as columns, (n(n+1)/2, K)."""
    vectors = vectors.contiguous()
    return vectors.index_select(0, layout.rows) * vectors.index_select(0, layout.cols) * layout.scale[:, None]


@dataclass(frozen=True)
class ClassPairs:
    """The pairs i < j of c classes, ``first`` and ``second`` (c(c−1)/2,), and the packed matrices
    p((e_i − e_j)(e_i − e_j)ᵀ) as columns, ``softmax_basis`` (c(c+1)/2, c(c−1)/2): S = Σ_{i<j} p_i p_j ·
    column (i, j)."""

    first: torch.Tensor
    second: torch.Tensor
    softmax_basis: torch.Tensor


@functools.lru_cache(maxsize=16)
def class_pairs(c: int, dtype: torch.dtype, device: torch.device) -> ClassPairs:
    first, second = torch.triu_indices(c, c, offset=1, device=device)
    unit = torch.eye(c, dtype=dtype, device=device)
    return ClassPairs(
        first, second, packed_outer_columns((unit[first] - unit[second]).T, packed_layout(c, dtype, device))
    )


@dataclass(frozen=True)
class NetPass:
    """One forward pass of a block of B examples and what the Hessian factors are built from: z (B, h)
    the hidden pre-activations, act φ(z), φ'(z), φ''(z), logits (B, c), p (B, c) the softmax, r = p − e_y,
    centered (B, c, h) rows w_i − W2ᵀp, delta (B, h) = W2ᵀr."""

    z: torch.Tensor
    act: ActivationDerivatives
    logits: torch.Tensor
    p: torch.Tensor
    r: torch.Tensor
    centered: torch.Tensor
    delta: torch.Tensor


def net_pass(params: ThreeLayerParams, x: torch.Tensor, y: torch.Tensor) -> NetPass:
    """The forward pass of x (B, d) (already flattened), labels y (B,). No cancellation: w_i − W2ᵀp =
    −Σ_j p_j (w_j − w_i) and r_y = −Σ_{k≠y} p_k, so confident predictions (p_y → 1) keep their digits."""
    w1, w2 = params.w1, params.w2
    c, h = params.num_classes, params.hidden
    z = x @ w1.T if params.b1 is None else torch.addmm(params.b1, x, w1.T)
    act = activation_derivatives(params.activation, z)
    logits = act.value @ w2.T if params.b2 is None else torch.addmm(params.b2, act.value, w2.T)
    p = torch.softmax(logits, dim=1)
    label = y[:, None]
    r = p.scatter(1, label, -p.scatter(1, label, 0.0).sum(dim=1, keepdim=True))  # p − e_y
    differences = (w2[None, :, :] - w2[:, None, :]).transpose(0, 1).reshape(c, c * h)  # [j, (i, a)]
    centered = -(p @ differences).reshape(-1, c, h)
    delta = -centered.gather(1, label[:, :, None].expand(-1, 1, h))[:, 0]  # W2ᵀ r = W2ᵀp − w_y
    return NetPass(z, act, logits, p, r, centered, delta)


def sample_factors(
    params: ThreeLayerParams,
    x: torch.Tensor,
    y: torch.Tensor,
    weight: torch.Tensor,
    net: NetPass | None = None,
) -> SampleFactors:
    """The factors of the examples x (B, d) (already flattened), labels y (B,), weights (B,), from their
    forward pass ``net`` (computed here when None).

    Nothing is formed by cancellation, so confident predictions (p_y → 1) keep their digits:
    S = diag(p) − ppᵀ = Σ_{i<j} p_i p_j (e_i − e_j)(e_i − e_j)ᵀ, and W2ᵀ S W2 = Σ_i p_i (w_i − W2ᵀp)(w_i −
    W2ᵀp)ᵀ (w_i the rows of W2) is a sum of PSD terms (see :func:`net_pass`).
    Cost O(B·(d·h + c²·h)) multiply-adds; memory O(B·(d + 4c·h)) numbers.
    """
    net = net if net is not None else net_pass(params, x, y)
    p, act = net.p, net.act
    pairs = class_pairs(params.num_classes, x.dtype, x.device)
    pair_weights = p[:, pairs.first] * p[:, pairs.second]  # (B, c(c−1)/2): p_i p_j, i < j
    v_mat = net.centered * act.first[:, None, :]  # (B, c, h): (w_i − W2ᵀp) φ'
    a_mat = p[:, :, None] * v_mat  # S W2 D = diag(p) (W2 − 1 gᵀ) D
    act_curv = act.second * net.delta  # φ'' ⊙ W2ᵀr: the activation-curvature term of M
    return SampleFactors(
        logits=net.logits,
        x_aug=_augment(x, params.b1 is not None),
        a_aug=_augment(act.value, params.b2 is not None),
        s_packed=pair_weights @ pairs.softmax_basis.T,
        r=net.r,
        dphi=act.first,
        a_mat=a_mat,
        v_mat=v_mat,
        act_curv=act_curv,
        b_flat=(a_mat * act.value[:, None, :]).flatten(1),
        rd_flat=(net.r[:, :, None] * act.first[:, None, :]).flatten(1),
        trace_s=2 * pair_weights.sum(1),
        trace_m=(a_mat * v_mat).sum((1, 2)) + act_curv.sum(1),
        x_sq=x.pow(2).sum(1),
        a_sq=act.value.pow(2).sum(1),
        weight=weight,
    )
