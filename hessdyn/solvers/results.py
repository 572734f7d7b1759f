"""Frozen result objects of the solvers: numbers always travel with their accuracy and cost."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

Which = Literal["largest", "smallest", "both"]


@dataclass(frozen=True)
class EigenResult:
    """Extreme eigenpairs of a symmetric operator.

    eigenvalues (k,) float64: descending for "largest", ascending for "smallest"; for "both" the
        `num_largest` largest (descending) followed by the smallest (ascending).
    eigenvectors (k, P) float64: unit rows, sign fixed so the largest-magnitude entry is positive.
    residuals (k,): true residual norms ||A v − λ v|| (absolute, in eigenvalue units).
    thresholds (k,): the residual each pair had to reach (eigenvalue units, `selection.pair_thresholds`):
        tol·scale for the largest pairs, tol·max(|λ|, tol·scale) for the smallest ones, where
        scale = |λ| of largest magnitude seen (`scale`).
    converged (k,) bool: residual <= threshold.
    num_hvps: operator products spent (a block of m counts m); wall_seconds: elapsed time.
    """

    eigenvalues: torch.Tensor
    eigenvectors: torch.Tensor
    residuals: torch.Tensor
    thresholds: torch.Tensor
    converged: torch.Tensor
    num_hvps: int
    wall_seconds: float
    which: Which
    tol: float
    scale: float
    method: str
    num_largest: int

    @property
    def relative_residuals(self) -> torch.Tensor:
        """residuals / scale (relative to |λ|max); the quantity compared with `tol` for the largest pairs."""
        return self.residuals / self.scale if self.scale > 0 else self.residuals

    @property
    def threshold_ratios(self) -> torch.Tensor:
        """residuals / thresholds: <= 1 exactly where `converged`."""
        return self.residuals / self.thresholds

    @property
    def all_converged(self) -> bool:
        return bool(self.converged.all())

    def part(self, which: Literal["largest", "smallest"]) -> EigenResult:
        """The "largest" or "smallest" half of a which="both" result (or the whole result if it matches)."""
        if self.which == which:
            return self
        if self.which != "both":
            raise ValueError(f"result holds {self.which!r} eigenpairs, not {which!r}")
        k = self.num_largest
        sl = slice(0, k) if which == "largest" else slice(k, None)
        return EigenResult(
            self.eigenvalues[sl],
            self.eigenvectors[sl],
            self.residuals[sl],
            self.thresholds[sl],
            self.converged[sl],
            self.num_hvps,
            self.wall_seconds,
            which,
            self.tol,
            self.scale,
            self.method,
            k if which == "largest" else 0,
        )


@dataclass(frozen=True)
class TraceResult:
    """Stochastic estimates of tr(A) and tr(A²) with standard errors of the mean (same units as A, A²).

    trace_sq is the Frobenius norm squared, Σ λ_i²; num_probes counts the random probes behind the estimates.
    """

    trace: float
    trace_se: float
    trace_sq: float
    trace_sq_se: float
    num_probes: int
    num_hvps: int
    wall_seconds: float
    method: str


@dataclass(frozen=True)
class SpectralDensityResult:
    """Stochastic Lanczos quadrature of the eigenvalue density (1/P)·Σ_λ δ(x − λ).

    nodes, weights (num_probes, m): Gauss quadrature per probe; each probe's weights sum to 1, so
        Σ_j weights[i, j]·g(nodes[i, j]) estimates (1/P)·Σ_λ g(λ), exactly in expectation over the probes
        for a polynomial g of degree < 2m (Gauss quadrature is exact there; Golub & Meurant 2010).
    grid (G,), density (G,): mean over probes of the quadratures broadened by a Gaussian of standard
        deviation `sigma` (eigenvalue units), averaged over each grid point's cell (edges halfway between
        neighbouring points), so Σ density·cell width is the mass inside the grid (1 up to the tails past
        ±5σ) whatever the grid spacing. Units: 1/eigenvalue.
    sigma: the broadening; `sigma_rule` says where it came from ("node spacing" or "given").

    Moments: `moment(p)` and `moment_se(p)` come from the node weights and are unbiased for tr(A^p)/P. The
    broadened curve is wider than the quadrature: its mean is moment(1) but its second moment is
    moment(2) + σ² (the kernel's variance), so tr(A²) must not be read off the curve.
    """

    nodes: torch.Tensor
    weights: torch.Tensor
    grid: torch.Tensor
    density: torch.Tensor
    sigma: float
    sigma_rule: str
    num_hvps: int
    wall_seconds: float

    def per_probe_moments(self, p: int) -> torch.Tensor:
        """(num_probes,) quadratures of x^p, one per probe: zᵀA^p z/P for that probe's normalized z."""
        return (self.weights * self.nodes.pow(p)).sum(dim=1)

    def moment(self, p: int) -> float:
        """Estimate of (1/P)·tr(A^p): the mean of the per-probe quadratures (unbiased for p < 2m)."""
        return float(self.per_probe_moments(p).mean())

    def moment_se(self, p: int) -> float:
        """Standard error of `moment(p)` over the probes (NaN with one probe). From a handful of probes it is
        itself noisy, and low when a few large eigenvalues carry tr(A^p): a probe's share of them is a
        heavy-tailed χ²₁ draw the few samples may miss (Hutch++ deflates them and estimates traces better)."""
        per = self.per_probe_moments(p)
        if per.numel() < 2:
            return float("nan")
        return float(per.std(unbiased=True)) / math.sqrt(per.numel())


@dataclass(frozen=True)
class DiagonalResult:
    """A stochastic estimate of diag(A) (P,) float64 with the standard error of each entry (P,), same units.

    num_probes: random probes behind every entry; num_hvps: operator products spent (= num_probes).
    trace, trace_se: Σ_i diagonal_i, the Hutchinson estimate of tr(A) from the same probes, and its standard
    error from the per-probe samples zᵀAz (not from the entrywise errors, which are correlated).
    """

    diagonal: torch.Tensor
    standard_error: torch.Tensor
    num_probes: int
    num_hvps: int
    wall_seconds: float
    method: str
    trace: float = math.nan
    trace_se: float = math.nan
