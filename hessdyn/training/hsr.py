"""HSR (Hessian Spectral Range) regularization, Omae et al. 2026 (arXiv 2606.28662), for ``model=three_layer``.

The penalty is ``β·U_WS(θ)`` of the current minibatch, added to the training loss, where ``U_WS`` is the
Wolkowicz–Styan upper bound on the largest eigenvalue of the minibatch loss Hessian H (P×P, mean
cross-entropy over the B examples of the batch), as Omae et al. 2026 (arXiv 2604.10202) write it for the
smooth three-layer net:

    U_WS(θ) = μ + s·sqrt(P − 1),   μ = tr(H)/P,   s² = tr(H²)/P − μ²      (Wolkowicz & Styan 1980).

tr(H) and tr(H²) come from the exact closed form of :mod:`hessdyn.curvature.three_layer_traces`; the
gradient ∇_θ U_WS is the reverse-mode chain rule through that closed form, written out by hand in
:mod:`hessdyn.curvature.three_layer_grad` (third derivatives of the net, exact; no finite differences, no
sampling; checked against autograd through the closed form to 1e-10). Omae et al. derive the gradient
by hand too ("closed-form steepest descent direction"); the papers' equation numbers could not be read
from the sources available here, so the formulas are derived again in docs/flat_minima.md.

Other models are refused (``hessdyn.config.flat_minima.check_regularizer``), not approximated. A
Hutchinson variant cannot give an unbiased gradient of U_WS: with c = sqrt(P − 1),

    ∇U = (1/P − c·μ/(P·s))·∇tr(H) + (c/(2P·s))·∇tr(H²),

whose coefficients are nonlinear in the traces (through 1/s), so unbiased trace estimates plugged in give
a biased gradient (and each ∇tr(H²) sample costs a third-order, Hessian-of-HVP, product besides). A
penalty whose gradient is off by an unknown bias would confound exactly the comparison the experiment
makes, so hessdyn offers HSR only where it is exact.

Cost per step (B examples, d inputs, h hidden units, c classes): O(B²(d + 3h²/4 + 2ch)) multiply-adds
forward, O(B²(2ch) + B·c·h²) backward; memory O(B·(d + 3h²/4 + 5ch) + B²). See scripts/bench_flat.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from hessdyn.curvature.three_layer_factors import three_layer_params
from hessdyn.curvature.three_layer_grad import exact_traces_with_gradient
from hessdyn.curvature.three_layer_traces import sample_weights


@dataclass(frozen=True)
class WSUpperBound:
    """Differentiable 0-dim tensors: ``upper = mean + std·sqrt(size − 1)`` with ``mean = trace/size``,
    ``std = sqrt(max(trace_sq/size − mean², 0))`` (eigenvalue units). Not differentiable where std = 0."""

    upper: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    size: int


def ws_upper_bound(trace: torch.Tensor, trace_sq: torch.Tensor, size: int) -> WSUpperBound:
    """The Wolkowicz–Styan upper bound from tr(H), tr(H²) and P = ``size`` as a function autograd can
    differentiate (the float version with the lower bound: :func:`hessdyn.trajectory.ws_bound_from_traces`)."""
    if size < 2:
        raise ValueError(f"the bound needs P >= 2, got {size}")
    mean = trace / size
    std = (trace_sq / size - mean * mean).clamp_min(0.0).sqrt()
    return WSUpperBound(upper=mean + std * math.sqrt(size - 1), mean=mean, std=std, size=size)


@dataclass(frozen=True)
class HSRPenalty:
    """One minibatch's HSR term. ``penalty = beta·bound`` (0-dim tensor, graph attached: add it to the data
    loss before ``backward()``); ``bound`` = U_WS (tensor, graph attached); ``logits`` (B, c): the model's
    outputs on the batch from the same forward pass (graph attached; build the data loss on them and the
    two share one backward pass through the first layer); ``trace``, ``trace_sq`` (floats) the exact
    minibatch traces behind the bound, for logging."""

    penalty: torch.Tensor
    bound: torch.Tensor
    logits: torch.Tensor
    trace: float
    trace_sq: float
    beta: float


def hsr_penalty(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    beta: float,
    *,
    weights: torch.Tensor | None = None,
) -> HSRPenalty:
    """β·U_WS(θ) of the Hessian of the mean cross-entropy of ``model`` (a ThreeLayerNet) on x (B, ...), y (B,).

    Differentiable in the model's own parameters (they receive gradients on ``backward()``); the model is
    not modified. ``weights`` (B,) replaces the mean by Σ w_n ℓ_n, as everywhere in hessdyn's curvature.
    Raises ValueError for beta < 0 and TypeError for a model other than ``three_layer``.
    """
    if not (math.isfinite(beta) and beta >= 0):
        raise ValueError(f"beta must be a finite number >= 0, got {beta}")
    params = three_layer_params(model)
    flat = x.reshape(x.shape[0], -1).to(params.w1.dtype)
    w = sample_weights(x.shape[0], weights, params.w1.dtype).to(flat.device)
    terms = exact_traces_with_gradient(params, flat, y, w)
    bound = ws_upper_bound(terms.trace, terms.trace_sq, params.size).upper
    return HSRPenalty(
        penalty=beta * bound,
        bound=bound,
        logits=terms.logits,
        trace=float(terms.trace.detach()),
        trace_sq=float(terms.trace_sq.detach()),
        beta=float(beta),
    )
