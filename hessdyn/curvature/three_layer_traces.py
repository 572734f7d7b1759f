"""Exact tr(H) and tr(H²) of the cross-entropy Hessian of the smooth three-layer net, without forming H.

The Hessian of ``L(θ) = Σ_n w_n ℓ_n(θ)`` over a sample set is ``H = Σ_n w_n H_n``, so

    tr(H)  = Σ_n w_n tr(H_n),       tr(H²) = ||H||_F² = Σ_{n,m} w_n w_m ⟨H_n, H_m⟩_F,

and with the per-sample blocks of :mod:`hessdyn.curvature.three_layer_factors` every pairwise product
reduces to input and hidden inner products ``kx = x̃_nᵀx̃_m``, ``ka = ã_nᵀã_m`` times class- and hidden-sized
factors (derivation: docs/flat_minima.md):

    ⟨H_n, H_m⟩_F = ⟨S_n, S_m⟩ ka² + ⟨M_n, M_m⟩ kx²
                   + 2 kx (⟨A_n, A_m⟩ ka + ⟨B_n, R_m⟩ + ⟨R_n, B_m⟩ + (r_nᵀr_m)(φ'_nᵀφ'_m)),

with ``B_n = A_n diag(a_n)`` and ``R_n = r_n φ'_nᵀ``. These are the two traces from which Omae et al. 2026
(arXiv 2604.10202) build the Wolkowicz–Styan bound ``λmax ≤ μ + s·sqrt(P−1)``, ``μ = tr(H)/P``,
``s² = tr(H²)/P − μ²`` of the smooth three-layer net. Here both traces are evaluated exactly from this
closed form (checked against dense Hessians to 1e-10), so the bound built on them is the WS bound of the
exact spectrum moments, with no further approximation.

Cost: tr(H) is O(N(dh + ch²)); tr(H²) is a sum over sample pairs, O(N²(d + 3h²/4 + 3ch)) multiply-adds in
matrix products, computed block by block over ``block_size`` examples (only blocks I ≤ J; the symmetric
pairs count twice). Memory: O(block_size·(d + 3h²/4 + 4ch) + block_size²) numbers, independent of N.
Differentiable by autograd (the reference the hand-written backward of
:mod:`hessdyn.curvature.three_layer_grad`, used for HSR, is tested against).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from hessdyn.curvature.mode import HessianMode
from hessdyn.curvature.params import ParamLayout
from hessdyn.curvature.three_layer_factors import (
    SampleFactors,
    ThreeLayerParams,
    sample_factors,
    three_layer_params,
)

DEFAULT_BLOCK_SIZE = 512


@dataclass(frozen=True)
class SameBlockProducts:
    """The (B, B) kernels and the matrix products of Σ_{n,m∈I} w_n w_m ⟨H_n, H_m⟩_F over one block I, kept
    so that a hand-written backward (:mod:`hessdyn.curvature.three_layer_grad`) reuses them.

    ww = w_n w_m; kx = x̃_nᵀx̃_m; ka = ã_nᵀã_m; wk = ww·kx; s_gram = ⟨S_n, S_m⟩; g_blocks, kg_blocks: the
    feature blocks of G (:meth:`SampleFactors.g_blocks`) and (wk·kx) @ block; k_e = (wk·kx) @ e;
    ka_a = (wk·ka) @ A; wk_rd = wk @ R (flattened); gram_r = ⟨R_n, R_m⟩ = (r_n·r_m)(φ'_n·φ'_m)."""

    ww: torch.Tensor
    kx: torch.Tensor
    ka: torch.Tensor
    wk: torch.Tensor
    s_gram: torch.Tensor
    g_blocks: tuple[torch.Tensor, ...]
    kg_blocks: tuple[torch.Tensor, ...]
    k_e: torch.Tensor
    ka_a: torch.Tensor
    wk_rd: torch.Tensor
    gram_r: torch.Tensor


def same_block_products(f: SampleFactors) -> SameBlockProducts:
    ww = f.weight[:, None] * f.weight[None, :]
    kx = f.x_aug @ f.x_aug.T
    ka = f.a_aug @ f.a_aug.T
    wk = ww * kx
    kernel_m = wk * kx
    blocks = f.g_blocks
    return SameBlockProducts(
        ww=ww,
        kx=kx,
        ka=ka,
        wk=wk,
        s_gram=f.s_packed @ f.s_packed.T,
        g_blocks=blocks,
        kg_blocks=tuple(kernel_m @ b for b in blocks),
        k_e=kernel_m @ f.act_curv,
        ka_a=(wk * ka) @ f.a_flat,
        wk_rd=wk @ f.rd_flat,
        gram_r=(f.r @ f.r.T) * (f.dphi @ f.dphi.T),
    )


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.dot(a.reshape(-1), b.reshape(-1))


def same_block_sum(f: SampleFactors, pr: SameBlockProducts) -> torch.Tensor:
    """Σ_{n,m∈I} w_n w_m ⟨H_n, H_m⟩_F from the products: ⟨S_n, S_m⟩ ka² + ⟨M_n, M_m⟩ kx² (M_n = G_n +
    diag(e_n): the G Grams plus ⟨2 diag G + e, (wk·kx) e⟩) + 2 kx (⟨A_n, A_m⟩ ka + ⟨R_n, R_m⟩) + 4 kx ⟨B_n, R_m⟩
    (the two cross products are equal in a symmetric sum)."""
    total = (pr.ww * pr.ka * pr.ka * pr.s_gram).sum()
    total = total + sum(_dot(b, kb) for b, kb in zip(pr.g_blocks, pr.kg_blocks, strict=True))
    total = total + _dot(2 * f.g_diag + f.act_curv, pr.k_e)
    total = total + 2 * (_dot(f.a_flat, pr.ka_a) + (pr.wk * pr.gram_r).sum())
    return total + 4 * _dot(f.b_flat, pr.wk_rd)


def _m_term_cross(fi: SampleFactors, fj: SampleFactors, kernel: torch.Tensor) -> torch.Tensor:
    """Σ_{n∈I, m∈J} K[n,m] ⟨M_n, M_m⟩_F for two different blocks."""
    total = sum(_dot(bi, kernel @ bj) for bi, bj in zip(fi.g_blocks, fj.g_blocks, strict=True))
    gi, gj, ei, ej = fi.g_diag, fj.g_diag, fi.act_curv, fj.act_curv
    return total + (kernel * (gi @ ej.T + ei @ gj.T + ei @ ej.T)).sum()


def pair_sum(fi: SampleFactors, fj: SampleFactors, *, same: bool) -> torch.Tensor:
    """Σ_{n∈I, m∈J} w_n w_m ⟨H_n, H_m⟩_F for two blocks of factors (``same``: J is I, fj is fi).

    The terms, in the notation of docs/flat_minima.md: ⟨S_n, S_m⟩ ka², ⟨M_n, M_m⟩ kx², and twice
    kx·(⟨A_n, A_m⟩ ka + ⟨B_n, R_m⟩ + ⟨R_n, B_m⟩ + ⟨R_n, R_m⟩), each a Gram matrix of per-sample features.
    """
    if same:
        return same_block_sum(fi, same_block_products(fi))
    ww = fi.weight[:, None] * fj.weight[None, :]
    kx = fi.x_aug @ fj.x_aug.T
    ka = fi.a_aug @ fj.a_aug.T
    wk = ww * kx
    total = (ww * ka * ka * (fi.s_packed @ fj.s_packed.T)).sum()
    total = total + _m_term_cross(fi, fj, wk * kx)
    total = total + 2 * ((wk * ka) * (fi.a_flat @ fj.a_flat.T)).sum()
    gram_r = (fi.r @ fj.r.T) * (fi.dphi @ fj.dphi.T)
    cross = _dot(fi.b_flat, wk @ fj.rd_flat) + _dot(fi.rd_flat, wk @ fj.b_flat)
    return total + 2 * ((wk * gram_r).sum() + cross)


@dataclass(frozen=True)
class TraceTerms:
    """0-dim tensors (autograd graph attached when the parameters require grad) of the data term.

    trace = tr(H), trace_sq = tr(H²) = ||H||_F² (units of the loss Hessian and its square);
    block_traces: tr of each parameter's diagonal block, in ``names`` order (they sum to ``trace``);
    size: P, the number of parameters; logits (N, c): the net's outputs on the sample set, from the same
    forward pass (a data loss built on them shares its backward pass with the traces').
    """

    trace: torch.Tensor
    trace_sq: torch.Tensor
    logits: torch.Tensor
    block_traces: tuple[torch.Tensor, ...]
    names: tuple[str, ...]
    size: int


def _block_traces(f: SampleFactors, params: ThreeLayerParams) -> list[torch.Tensor]:
    """tr of the per-parameter diagonal blocks: W1 Σ w tr(M)||x||², b1 Σ w tr(M), W2 Σ w tr(S)||a||², b2 Σ w tr(S)."""
    parts = [(f.weight * f.trace_m * f.x_sq).sum()]
    if params.b1 is not None:
        parts.append((f.weight * f.trace_m).sum())
    parts.append((f.weight * f.trace_s * f.a_sq).sum())
    if params.b2 is not None:
        parts.append((f.weight * f.trace_s).sum())
    return parts


def trace_terms(
    params: ThreeLayerParams,
    x: torch.Tensor,
    y: torch.Tensor,
    weights: torch.Tensor,
    *,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> TraceTerms:
    """tr(H) and tr(H²) of the Hessian of Σ_n w_n ℓ_n for the three-layer net ``params`` on x (N, d), y (N,), weights (N,).

    Everything is differentiable in the parameters (autograd through the closed form; the gradient of
    tr(H²) involves third derivatives of the net, which autograd takes through φ'' and the softmax).
    """
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    starts = list(range(0, x.shape[0], block_size))

    def factors(start: int) -> SampleFactors:
        sl = slice(start, start + block_size)
        return sample_factors(params, x[sl], y[sl], weights[sl])

    trace_sq = x.new_zeros(())
    blocks: list[torch.Tensor] = []
    logits: list[torch.Tensor] = []
    for i, start_i in enumerate(starts):
        fi = factors(start_i)
        parts = _block_traces(fi, params)
        blocks = parts if not blocks else [a + b for a, b in zip(blocks, parts, strict=True)]
        logits.append(fi.logits)
        trace_sq = trace_sq + pair_sum(fi, fi, same=True)
        for start_j in starts[i + 1 :]:
            trace_sq = trace_sq + 2 * pair_sum(fi, factors(start_j), same=False)
    return TraceTerms(
        trace=torch.stack(blocks).sum(),
        trace_sq=trace_sq,
        logits=torch.cat(logits),
        block_traces=tuple(blocks),
        names=params.names,
        size=params.size,
    )


@dataclass(frozen=True)
class ThreeLayerTraces:
    """Exact tr(H) and tr(H²) = Σλ² of the Hessian of ``Σ_n w_n ℓ_n`` (+ the mode's weight-decay term).

    block_traces: {parameter name: trace of its diagonal block}, weight-decay share included;
    size: P; num_examples: N; weight_decay: the L2 coefficient c folded in (0: the bare data loss);
    wall_seconds: elapsed time. Exact up to rounding: no standard error.
    """

    trace: float
    trace_sq: float
    size: int
    block_traces: dict[str, float]
    num_examples: int
    weight_decay: float
    wall_seconds: float
    method: str = "exact (three_layer closed form)"


def sample_weights(
    n: int, weights: torch.Tensor | Sequence[float] | None, dtype: torch.dtype
) -> torch.Tensor:
    """(n,) weights: 1/n each when None (the mean loss, as :class:`~hessdyn.curvature.EmpiricalRisk`), else
    the given non-negative finite weights as they are (the loss is Σ w_n ℓ_n)."""
    if weights is None:
        return torch.full((n,), 1.0 / n, dtype=dtype)
    w = torch.as_tensor(weights, dtype=dtype)
    if w.shape != (n,):
        raise ValueError(f"weights must have shape ({n},), got {tuple(w.shape)}")
    if not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
        raise ValueError("weights must be finite and non-negative")
    return w


def three_layer_traces(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    weights: torch.Tensor | Sequence[float] | None = None,
    mode: HessianMode | None = None,
    dtype: torch.dtype | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> ThreeLayerTraces:
    """Exact tr(H), tr(H²) of ``model`` (a ThreeLayerNet) over x (N, ...), y (N,), no HVPs, H never formed.

    weights: None for the mean cross-entropy (what every hessdyn curvature operator differentiates), or
        (N,) non-negative sample weights w_n for Σ_n w_n ℓ_n. mode: only ``weight_decay``/``decayed`` matter
        (the net has no batch norm or dropout); the term (c/2)||θ_D||² adds c·|D| to tr(H) and
        2c·tr(H_DD) + c²·|D| to tr(H²). dtype: compute in this dtype (default: the model's); the model is
        not modified. Memory: O(block_size·(d + 3h²/2 + 3ch) + block_size²), see the module docstring.
    """
    start = time.perf_counter()
    mode = mode if mode is not None else HessianMode()
    params = three_layer_params(model)
    dtype = dtype if dtype is not None else params.w1.dtype
    device = params.w1.device
    if x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ValueError(f"need matching non-empty x and y, got {x.shape[0]} and {y.shape[0]} examples")
    w = sample_weights(x.shape[0], weights, dtype).to(device)
    with torch.no_grad():
        terms = trace_terms(
            params.to(dtype),
            x.reshape(x.shape[0], -1).to(device, dtype),
            y.to(device),
            w,
            block_size=block_size,
        )
    blocks = {n: float(t) for n, t in zip(terms.names, terms.block_traces, strict=True)}
    trace, trace_sq = float(terms.trace), float(terms.trace_sq)
    c = float(mode.weight_decay)
    if c > 0:
        select = mode.decayed if mode.decayed is not None else terms.names
        layout = ParamLayout.from_model(model)
        mask = layout.mask(select)
        decayed = {n: int(mask[sl].sum()) for n, sl in zip(layout.names, layout.slices, strict=True)}
        trace_sq += 2 * c * sum(blocks[n] for n, k in decayed.items() if k) + c * c * sum(decayed.values())
        trace += c * sum(decayed.values())
        blocks = {n: v + c * decayed[n] for n, v in blocks.items()}
    return ThreeLayerTraces(
        trace=trace,
        trace_sq=trace_sq,
        size=terms.size,
        block_traces=blocks,
        num_examples=x.shape[0],
        weight_decay=c,
        wall_seconds=time.perf_counter() - start,
    )
