"""tr(H), tr(H²) of one block of examples with a hand-derived gradient (the HSR training step).

:func:`exact_traces_with_gradient` returns the same numbers as
:func:`hessdyn.curvature.three_layer_traces.trace_terms` over one block (the forward pass is that
module's: :func:`sample_factors`, :func:`same_block_products`, :func:`same_block_sum`), but its backward
pass is written out by hand instead of recorded by autograd: the reverse-mode chain rule through the
closed form, reusing the forward's matrix products. Autograd through the closed form records a graph of
~380 operations per step, whose bookkeeping and element-wise backward cost more than the products
themselves (docs/flat_minima.md, "Cost of an HSR step"). The backward is checked against autograd
through ``trace_terms`` to 1e-10 in float64 (tests/curvature/test_three_layer_grad.py).

Notation of docs/flat_minima.md, per example: z = W1x + b1, a = φ(z), f = W2a + b2, p = softmax(f),
r = p − e_y, g = W2ᵀp, rows cen_i = w_i − g, V = cen·diag(φ'), A = diag(p)V, δ = g − w_y, e = φ''⊙δ,
Bm = A·diag(a), R = rφ'ᵀ, G = AᵀV, pw_ij = p_ip_j. With upstream gradients t̄ (of tr H), q̄ (of tr H²) and
f̄₀ (of the logits, the data loss), the adjoints (x̄ = ∂L/∂x) are, with K_M = ww·kx², K_A = ww·kx·ka:

    s̄ = 2q̄ (ww·ka²) s,   k̄a = 2q̄ (ww·ka·⟨S,S⟩ + ww·kx·⟨A,A⟩),   ã̄ = 2 k̄a ã,
    Ḡ = 2q̄ K_M G,   ḡd = 2q̄ K_M e + t̄rM,   ē = 2q̄ K_M (gd + e) + t̄rM,   Ā = 4q̄ K_A A,
    B̄ = 4q̄ (ww·kx) R,   R̄ = 4q̄ (ww·kx) Bm,   r̄ = 4q̄ (ww·kx·Φ'Φ'ᵀ) r,   φ̄' = 4q̄ (ww·kx·rrᵀ) φ',

then back through G = AᵀV, gd = diag G, Bm, R, e, A = diag(p)V, V = cen·diag(φ'), cen, δ, g = W2ᵀp,
pw, the softmax, f = W2a + b2, a = φ(z) (z̄ = ā φ' + φ̄' φ'' + φ̄'' φ''') and z = W1x + b1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from hessdyn.curvature.three_layer_factors import (
    NetPass,
    SampleFactors,
    ThreeLayerParams,
    activation_third_derivative,
    class_pairs,
    net_pass,
    sample_factors,
)
from hessdyn.curvature.three_layer_traces import SameBlockProducts, same_block_products, same_block_sum


@dataclass(frozen=True)
class BlockTraces:
    """0-dim ``trace`` = tr(H), ``trace_sq`` = tr(H²) of Σ_n w_n ℓ_n over the block, and the block's
    ``logits`` (B, c), all three differentiable in the parameters (hand-written backward)."""

    trace: torch.Tensor
    trace_sq: torch.Tensor
    logits: torch.Tensor


def exact_traces_with_gradient(
    params: ThreeLayerParams, x: torch.Tensor, y: torch.Tensor, weights: torch.Tensor
) -> BlockTraces:
    """tr(H), tr(H²) and the logits of the three-layer net over x (B, d) (flattened), y (B,), weights (B,),
    as one block, with the hand-derived gradient. The parameters' gradients arrive on ``backward()``."""
    trace, trace_sq, logits = _ExactTraces.apply(
        x, y, weights, params.activation, params.w1, params.b1, params.w2, params.b2
    )
    return BlockTraces(trace, trace_sq, logits)


@dataclass
class _Saved:
    params: ThreeLayerParams
    x: torch.Tensor
    y: torch.Tensor
    net: NetPass
    f: SampleFactors
    pr: SameBlockProducts


class _ExactTraces(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        y: torch.Tensor,
        weights: torch.Tensor,
        activation: str,
        w1: torch.Tensor,
        b1: torch.Tensor | None,
        w2: torch.Tensor,
        b2: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        params = ThreeLayerParams(w1, b1, w2, b2, activation, ())
        net = net_pass(params, x, y)
        f = sample_factors(params, x, y, weights, net)
        pr = same_block_products(f)
        trace_sq = same_block_sum(f, pr)
        trace = (weights * (f.trace_m * _plus(f.x_sq, b1) + f.trace_s * _plus(f.a_sq, b2))).sum()
        ctx.saved = _Saved(params, x, y, net, f, pr)
        return trace, trace_sq, net.logits

    @staticmethod
    def backward(
        ctx: Any, g_trace: torch.Tensor, g_trace_sq: torch.Tensor, g_logits: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:
        s: _Saved = ctx.saved
        del ctx.saved
        grads = _backward(s, g_trace, g_trace_sq, g_logits)
        return (None, None, None, None, *grads)


def _plus(values: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """||v||² + 1 with a bias (the augmented vector's 1), else ||v||²."""
    return values + 1 if bias is not None else values


def _backward(
    s: _Saved, g_trace: torch.Tensor | None, g_trace_sq: torch.Tensor | None, g_logits: torch.Tensor | None
) -> tuple[torch.Tensor | None, ...]:
    zero = s.f.weight.new_zeros(())
    gt = g_trace if g_trace is not None else zero
    gq = g_trace_sq if g_trace_sq is not None else zero
    return _through_the_net(s, *_factor_adjoints(s, gt, gq), g_logits)


def _factor_adjoints(
    s: _Saved, gt: torch.Tensor, gq: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Adjoints of the forward pass' cen (B, c, h), δ, p (B, c), φ', φ'' and a (B, h) from tr H and tr H²."""
    params, net, f, pr = s.params, s.net, s.f, s.pr
    b, c, h = f.a_mat.shape
    w = f.weight
    kernel_m = pr.wk * pr.kx
    # --- tr(H) = Σ w (trM (|x|²+1) + trS (|a|²+1))
    tr_m_bar = gt * w * _plus(f.x_sq, params.b1)  # (B,)
    tr_s_bar = gt * w * _plus(f.a_sq, params.b2)
    act_bar = (2 * gt * w * f.trace_s)[:, None] * net.act.value  # from |a|²
    # --- the S term Σ ww ka² ⟨S,S⟩ and the A term 2 Σ ww kx ka ⟨A,A⟩: s̄ and k̄a
    s_bar = (2 * gq) * ((pr.ww * pr.ka * pr.ka) @ f.s_packed)
    ka_bar = (2 * gq) * (pr.ww * pr.ka * pr.s_gram + pr.wk * (f.a_flat @ f.a_flat.T))
    a_aug_bar = 2 * (ka_bar @ f.a_aug)
    act_bar = act_bar + a_aug_bar[:, :h]
    a_bar = ((4 * gq) * pr.ka_a).view(b, c, h)
    # --- the M term: G blocks, its diagonal and e
    v_bar = torch.zeros_like(f.v_mat)
    _g_blocks_backward(f, [(2 * gq) * kb for kb in pr.kg_blocks], a_bar, v_bar)
    gd_bar = (2 * gq) * pr.k_e + tr_m_bar[:, None]
    e_bar = (2 * gq) * (kernel_m @ (f.g_diag + f.act_curv)) + tr_m_bar[:, None]
    a_bar += gd_bar[:, None, :] * f.v_mat
    v_bar += gd_bar[:, None, :] * f.a_mat
    # --- the cross term 4 Σ ww kx ⟨Bm_n, R_m⟩ and 2 Σ ww kx ⟨R,R⟩
    bm_bar = ((4 * gq) * pr.wk_rd).view(b, c, h)
    rd_bar = ((4 * gq) * (pr.wk @ f.b_flat)).view(b, c, h)
    phi1 = f.dphi
    r_bar = (4 * gq) * ((pr.wk * (phi1 @ phi1.T)) @ f.r) + (rd_bar * phi1[:, None, :]).sum(2)
    phi1_bar = (4 * gq) * ((pr.wk * (f.r @ f.r.T)) @ phi1) + (rd_bar * f.r[:, :, None]).sum(1)
    a_bar += bm_bar * net.act.value[:, None, :]
    act_bar = act_bar + (bm_bar * f.a_mat).sum(1)
    # --- e = φ''⊙δ
    phi2_bar = e_bar * net.delta
    delta_bar = e_bar * net.act.second
    # --- pw (S packed, trS)
    pairs = class_pairs(c, w.dtype, w.device)
    pw_bar = s_bar @ pairs.softmax_basis + (2 * tr_s_bar)[:, None]
    p = net.p
    p_bar = r_bar.clone()
    p_bar.index_add_(1, pairs.first, pw_bar * p[:, pairs.second])
    p_bar.index_add_(1, pairs.second, pw_bar * p[:, pairs.first])
    # --- A = diag(p) V, V = cen ⊙ φ'
    v_bar += p[:, :, None] * a_bar
    p_bar += (a_bar * f.v_mat).sum(2)
    phi1_bar = phi1_bar + (v_bar * net.centered).sum(1)
    cen_bar = v_bar * phi1[:, None, :]
    return cen_bar, delta_bar, p_bar, phi1_bar, phi2_bar, act_bar


def _g_blocks_backward(
    f: SampleFactors, block_bars: list[torch.Tensor], a_bar: torch.Tensor, v_bar: torch.Tensor
) -> None:
    """Add the adjoints of A and V through G's feature blocks (:meth:`SampleFactors.g_blocks`): for a
    block T = Lᵀ R, L̄ = R T̄ᵀ and R̄ = L T̄."""
    a, v = f.a_mat, f.v_mat
    h = v.shape[2]
    h1 = h // 2
    bottom = block_bars[-1].view(-1, h - h1, h - h1)
    a_bar[:, :, h1:] += torch.bmm(v[:, :, h1:], bottom.transpose(1, 2))
    v_bar[:, :, h1:] += torch.bmm(a[:, :, h1:], bottom)
    if h1:
        top = block_bars[0].view(-1, h1, h)
        scale = torch.ones(h, dtype=v.dtype, device=v.device)
        scale[h1:] = 2.0**0.5
        a_bar[:, :, :h1] += torch.bmm(v * scale, top.transpose(1, 2))
        v_bar += torch.bmm(a[:, :, :h1], top) * scale


def _through_the_net(
    s: _Saved,
    cen_bar: torch.Tensor,
    delta_bar: torch.Tensor,
    p_bar: torch.Tensor,
    phi1_bar: torch.Tensor,
    phi2_bar: torch.Tensor,
    act_bar: torch.Tensor,
    g_logits: torch.Tensor | None,
) -> tuple[torch.Tensor | None, ...]:
    """From the adjoints of the forward pass' quantities to the gradients of W1, b1, W2, b2."""
    params, net, x, y = s.params, s.net, s.x, s.y
    w2, p = params.w2, net.p
    # cen_i = w_i − g, δ = g − w_y, g = W2ᵀp
    w2_bar = cen_bar.sum(0)
    g_bar = delta_bar - cen_bar.sum(1)
    w2_bar.index_add_(0, y, -delta_bar)
    w2_bar += p.T @ g_bar
    p_bar = p_bar + g_bar @ w2.T
    # softmax, then f = W2 a + b2
    f_bar = p * (p_bar - (p * p_bar).sum(1, keepdim=True))
    if g_logits is not None:
        f_bar = f_bar + g_logits
    w2_bar += f_bar.T @ net.act.value
    act_bar = act_bar + f_bar @ w2
    # a = φ(z): φ, φ', φ'' all depend on z
    third = activation_third_derivative(params.activation, net.z)
    z_bar = act_bar * net.act.first + phi1_bar * net.act.second + phi2_bar * third
    w1_bar = z_bar.T @ x
    b1_bar = z_bar.sum(0) if params.b1 is not None else None
    b2_bar = f_bar.sum(0) if params.b2 is not None else None
    return w1_bar, b1_bar, w2_bar, b2_bar
