"""The symmetric linear-operator interface every curvature matrix and solver speaks."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch

from hessdyn.curvature.mode import HessianMode
from hessdyn.curvature.params import ParamLayout


class NonFiniteCurvature(ArithmeticError):
    """A curvature product came out inf or NaN: the loss or its curvature overflows at these parameters
    (typically a diverged checkpoint, or float32 where float64 would still hold)."""


class CurvatureOperator(ABC):
    """A symmetric P×P matrix known through products.

    `matvec` maps (P,) -> (P,), `matmat` maps (P, m) -> (P, m), in `dtype` on `device` (inputs of another
    floating dtype are cast). `num_hvps` counts vector products: a block of m counts m. A product with an
    inf or NaN entry raises NonFiniteCurvature, so no solver ever works on garbage.

    `mean_over_examples` is True for an operator whose matrix is a mean over the examples of its data set
    (weights n_b/N summing to 1) plus a term that does not depend on the data (weight decay): over disjoint
    shards of one set, the matrix of the whole set is then the share-weighted sum Σ_r (N_r/N)·A_r, which is
    what `hessdyn.curvature.distributed` relies on (with batch norm in train mode the mean runs over batches,
    so shards must hold whole batches: `shard_hessian_set(..., batch_size=...)`). Anything else (a centered covariance, a conjugate, an
    explicit matrix) keeps False and cannot be sharded as is.
    """

    mean_over_examples: ClassVar[bool] = False

    def __init__(
        self, layout: ParamLayout, dtype: torch.dtype, device: torch.device, mode: HessianMode | None = None
    ) -> None:
        self.layout = layout
        self.dtype = dtype
        self.device = device
        self.mode = mode
        self._num_hvps = 0

    @property
    def size(self) -> int:
        return self.layout.numel

    @property
    def num_hvps(self) -> int:
        return self._num_hvps

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        if v.shape != (self.size,):
            raise ValueError(f"matvec expects shape ({self.size},), got {tuple(v.shape)}")
        return self.matmat(v[:, None])[:, 0]

    def matmat(self, V: torch.Tensor) -> torch.Tensor:
        if V.dim() != 2 or V.shape[0] != self.size:
            raise ValueError(f"matmat expects shape ({self.size}, m), got {tuple(V.shape)}")
        if V.shape[1] == 0:
            return torch.zeros(self.size, 0, dtype=self.dtype, device=self.device)
        self._num_hvps += V.shape[1]
        out = self._matmat(V.to(device=self.device, dtype=self.dtype))
        if not bool(torch.isfinite(out).all()):
            raise NonFiniteCurvature(
                f"a {type(self).__name__} product is not finite (inf/NaN): the loss or its curvature "
                "overflows at these parameters"
            )
        return out

    @abstractmethod
    def _matmat(self, V: torch.Tensor) -> torch.Tensor:
        """(P, m) -> (P, m) in `dtype`; counting and checks are done by the caller."""

    def __matmul__(self, V: torch.Tensor) -> torch.Tensor:
        return self.matvec(V) if V.dim() == 1 else self.matmat(V)


class MatrixOperator(CurvatureOperator):
    """An explicit symmetric matrix behind the operator interface (solver tests, dense ground truth)."""

    def __init__(self, matrix: torch.Tensor) -> None:
        if matrix.dim() != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ValueError(f"expected a square matrix, got shape {tuple(matrix.shape)}")
        n = matrix.shape[0]
        super().__init__(ParamLayout(("matrix",), (torch.Size([n]),)), matrix.dtype, matrix.device)
        self.matrix = matrix

    def _matmat(self, V: torch.Tensor) -> torch.Tensor:
        return self.matrix @ V


class DiagonalConjugate(CurvatureOperator):
    """D·A·D for D = diag(d), d >= 0 and finite, sharing A's product counter.

    With d = P^{-1/2} (Adam's preconditioner) this is the preconditioned Hessian; with d = |θ| it is the
    scale-invariant sharpness operator diag(|θ|)·H·diag(|θ|) (a zero entry, e.g. a bias still at its zero
    initialization, simply projects that coordinate out).
    """

    def __init__(self, inner: CurvatureOperator, d: torch.Tensor) -> None:
        if d.shape != (inner.size,):
            raise ValueError(f"d must have shape ({inner.size},), got {tuple(d.shape)}")
        if not bool(torch.isfinite(d).all()) or bool((d < 0).any()):
            raise ValueError("d must be finite and non-negative")
        super().__init__(inner.layout, inner.dtype, inner.device, inner.mode)
        self.inner = inner
        self.d = d.to(device=inner.device, dtype=inner.dtype)

    @property
    def num_hvps(self) -> int:
        return self.inner.num_hvps

    def matmat(self, V: torch.Tensor) -> torch.Tensor:
        if V.dim() != 2 or V.shape[0] != self.size:
            raise ValueError(f"matmat expects shape ({self.size}, m), got {tuple(V.shape)}")
        return self._matmat(V.to(device=self.device, dtype=self.dtype))

    def _matmat(self, V: torch.Tensor) -> torch.Tensor:
        d = self.d[:, None]
        return d * self.inner.matmat(d * V)
