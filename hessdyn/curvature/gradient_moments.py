"""Second moment M and covariance C of the per-example gradients, as matrix-free curvature operators.

Over the examples, weights w_n (Σ w_n = 1) and Hessian mode of an `EmpiricalRisk`, with g_n = ∇ℓ_n + d the
stochastic gradient of example n (d = c·mask⊙θ when the mode has weight decay c, else 0):

    M = Σ_n w_n g_n g_nᵀ,    ḡ = Σ_n w_n g_n = ∇L(θ),    C = M − ḡḡᵀ = Σ_n w_n (g_n − ḡ)(g_n − ḡ)ᵀ.

Both are P×P, symmetric positive semi-definite, in units of (loss / parameter)². C is the covariance of one
example's gradient (the noise of SGD with batch size 1 drawn with probabilities w_n); a minibatch of B
examples drawn with replacement has covariance C / B. Weight decay shifts every g_n by the same d, so it
changes M and leaves C alone.

Products, with a_n = g_nᵀv computed for all n at once (one Jacobian-vector product of the vector of
per-example losses ℓ(θ) ∈ R^n) and Σ_n w_n a_n g_n one vector-Jacobian product:

    M v = J_ℓᵀ (w ⊙ a') + d · Σ_n w_n a'_n,   a' = J_ℓ v + dᵀv;
    C v = J_ℓᵀ (w ⊙ (J_ℓ v − ḡᵀv)),           the centred form (no rank-one subtraction).

Back ends (`backend`), all exact to round-off, memory bounded by `chunk_size` examples at a time:
  "double_vjp": J_ℓ v as the derivative of u ↦ J_ℓᵀu with respect to u (reverse mode only); with one chunk
      the forward pass and the graph of J_ℓᵀu are kept and each product is two backward passes. Memory: the
      chunk's activations and their gradient graph, like a Hessian product over a batch of that size.
  "jvp": J_ℓ v by forward mode (torch.func.linearize, kept for one chunk), J_ℓᵀ by torch.func.vjp.
  "per_sample": the chunk's per-example gradients G (n × P, torch.func vmap over grad), then Gᵀ(w ⊙ G V):
      memory about 2·n·P numbers (measured), and ~30 Hessian products' time per pass on the benchmark MLP,
      which a whole block of vectors shares.
"auto" is "double_vjp": on the benchmark MLP (scripts/bench_noise.py, docs/measurements.md) one product
costs about one Hessian product with the Hessian set in one batch or in four; forward-mode "jvp" is no
faster with a kept linearization and slower without one.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Literal

import torch
from torch.func import jvp, linearize, vjp, vmap

from hessdyn.curvature.hvp import load_jvp_decompositions
from hessdyn.curvature.operator import CurvatureOperator
from hessdyn.curvature.per_sample import (
    ExampleChunk,
    decay_gradient,
    example_chunks,
    per_example_losses,
    per_sample_gradients,
    require_per_sample_gradients,
)
from hessdyn.curvature.risk import EmpiricalRisk

MomentBackend = Literal["auto", "double_vjp", "jvp", "per_sample"]
_BACKENDS = ("auto", "double_vjp", "jvp", "per_sample")
# (tangents as per-parameter tensors (m, *shape)) -> (n, m) a_n = g_nᵀ v_j
JvpFn = Callable[[tuple[torch.Tensor, ...]], torch.Tensor]
# (cotangent (n,)) -> flat (P,) Σ_n c_n ∇ℓ_n
VjpFn = Callable[[torch.Tensor], torch.Tensor]


class GradientMomentOperator(CurvatureOperator):
    """Shared machinery of `SecondMomentOperator` (centered=False) and `CovarianceOperator` (centered=True).

    risk: the objective, examples, weights and mode (the same object a HessianOperator is built on).
    chunk_size: at most this many examples at once (None: the risk's batches); products do not depend on
        it. cache_graph: with a single chunk keep its forward pass between products (time for memory).
    Raises PerSampleGradientsUndefined for batch norm on batch statistics.
    """

    centered: bool = False

    def __init__(
        self,
        risk: EmpiricalRisk,
        *,
        backend: MomentBackend = "auto",
        chunk_size: int | None = None,
        cache_graph: bool = True,
    ) -> None:
        if backend not in _BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(map(repr, _BACKENDS))}; got {backend!r}")
        require_per_sample_gradients(risk)
        super().__init__(risk.layout, risk.dtype, risk.device, risk.mode)
        self.risk = risk
        self.backend = "double_vjp" if backend == "auto" else backend
        self.chunk_size = chunk_size
        self.chunks = example_chunks(risk, chunk_size)
        self.cache_graph = cache_graph and len(self.chunks) == 1 and self.backend != "per_sample"
        if self.backend == "jvp":
            load_jvp_decompositions()
        self._cached: tuple[JvpFn, VjpFn] | None = None
        self._decay = decay_gradient(risk)
        self._mean_gradient: torch.Tensor | None = None

    @property
    def mean_gradient(self) -> torch.Tensor:
        """ḡ = Σ_n w_n g_n (P,), the risk's gradient (weight-decay term included)."""
        return self._data_mean_gradient() if self._decay is None else self._data_mean_gradient() + self._decay

    def _data_mean_gradient(self) -> torch.Tensor:
        """Σ_n w_n ∇ℓ_n, without the weight-decay shift (so centring never rounds against it); computed once."""
        if self._mean_gradient is None:
            self._mean_gradient = self.risk.loss_and_gradient(include_weight_decay=False).gradient
        return self._mean_gradient

    def _shift(self, V: torch.Tensor) -> torch.Tensor:
        """(1, m) row added to a_n = ∇ℓ_nᵀ v: dᵀV for M, −(Σ_n w_n ∇ℓ_n)ᵀV for C (centring)."""
        if self.centered:
            return -(self._data_mean_gradient() @ V)[None, :]
        if self._decay is None:
            return torch.zeros(1, V.shape[1], dtype=self.dtype, device=self.device)
        return (self._decay @ V)[None, :]

    def _matmat(self, V: torch.Tensor) -> torch.Tensor:
        shift = self._shift(V)
        out = torch.zeros(self.size, V.shape[1], dtype=self.dtype, device=self.device)
        weighted_sum = torch.zeros(V.shape[1], dtype=self.dtype, device=self.device)
        for chunk in self.chunks:
            if self.backend == "per_sample":
                G = per_sample_gradients(self.risk, chunk)
                A = G @ V + shift
                out += G.T @ (chunk.weights[:, None] * A)
            else:
                jvp_fn, vjp_fn = self._linear_maps(chunk)
                A = jvp_fn(self.layout.unflatten(V.T)) + shift
                for j in range(V.shape[1]):
                    out[:, j] += vjp_fn(chunk.weights * A[:, j])
            weighted_sum += chunk.weights @ A
        if self._decay is not None and not self.centered:
            out += self._decay[:, None] * weighted_sum[None, :]
        return out

    def _linear_maps(self, chunk: ExampleChunk) -> tuple[JvpFn, VjpFn]:
        if self._cached is not None:
            return self._cached
        if self.backend == "double_vjp":
            maps = _double_vjp_maps(self.risk, chunk)
        else:
            maps = _jvp_maps(self.risk, chunk, keep=self.cache_graph)
        if self.cache_graph:
            self._cached = maps
        return maps

    def release_graph(self) -> None:
        """Drop the kept forward pass (it holds the chunk's activations); the next product rebuilds it."""
        self._cached = None


class SecondMomentOperator(GradientMomentOperator):
    """M = Σ_n w_n g_n g_nᵀ (P×P, PSD): the uncentred second moment of the per-example gradients."""

    centered = False
    mean_over_examples = True  # a mean of per-example terms: its shards add up (curvature.distributed)


class CovarianceOperator(GradientMomentOperator):
    """C = Σ_n w_n (g_n − ḡ)(g_n − ḡ)ᵀ = M − ḡḡᵀ (P×P, PSD): the per-example gradient covariance.

    Not a mean over examples (ḡ is the whole set's): distributed, it is a distributed M with the
    correction −ḡ(ḡᵀv), ḡ the all-reduced gradient (`curvature.distributed.DistributedOperator`).
    """

    centered = True


def _double_vjp_maps(risk: EmpiricalRisk, chunk: ExampleChunk) -> tuple[JvpFn, VjpFn]:
    """Reverse mode only: J_ℓ v = ∂/∂u ⟨J_ℓᵀu, v⟩, the graph of u ↦ J_ℓᵀu built once for this chunk."""
    params = risk.params
    losses = per_example_losses(risk, params, chunk)
    u = torch.zeros_like(losses, requires_grad=True)
    jtu = torch.autograd.grad(losses, params, u, create_graph=True, allow_unused=True, materialize_grads=True)
    live = [i for i, g in enumerate(jtu) if g.requires_grad]

    def jvp_fn(tangents: tuple[torch.Tensor, ...]) -> torch.Tensor:
        m = tangents[0].shape[0]
        A = torch.zeros(chunk.size, m, dtype=risk.dtype, device=risk.device)
        if not live:
            return A
        for j in range(m):
            (A[:, j],) = torch.autograd.grad(
                [jtu[i] for i in live], u, [tangents[i][j] for i in live], retain_graph=True
            )
        return A

    def vjp_fn(cotangent: torch.Tensor) -> torch.Tensor:
        grads = torch.autograd.grad(
            losses, params, cotangent, retain_graph=True, allow_unused=True, materialize_grads=True
        )
        return risk.layout.flatten(grads)

    return jvp_fn, vjp_fn


def _jvp_maps(risk: EmpiricalRisk, chunk: ExampleChunk, *, keep: bool) -> tuple[JvpFn, VjpFn]:
    """torch.func: forward-mode J_ℓ v and a vjp closure for J_ℓᵀc. keep: linearize once (for products
    repeated on one chunk); otherwise each call recomputes the forward pass with its tangent."""
    primals = tuple(p.detach() for p in risk.params)

    def losses_of(*params: torch.Tensor) -> torch.Tensor:
        return per_example_losses(risk, params, chunk)

    linear: Callable[..., torch.Tensor]
    if keep:
        with warnings.catch_warnings():
            # torch.fx's constant folding inside linearize warns about its own graph module; nothing to act on.
            warnings.filterwarnings("ignore", message=r".*get_attr Node", category=UserWarning)
            linear = linearize(losses_of, *primals)[1]
    else:

        def linear(*tangent: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = jvp(losses_of, primals, tangent)[1]
            return out

    pullback = vjp(losses_of, *primals)[1]

    def jvp_fn(tangents: tuple[torch.Tensor, ...]) -> torch.Tensor:
        if tangents[0].shape[0] == 1:
            return linear(*(t[0] for t in tangents))[:, None]
        columns: torch.Tensor = vmap(linear)(*tangents)
        return columns.T

    def vjp_fn(cotangent: torch.Tensor) -> torch.Tensor:
        return risk.layout.flatten(pullback(cotangent))

    return jvp_fn, vjp_fn
