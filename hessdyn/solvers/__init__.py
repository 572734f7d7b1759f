"""Eigensolvers, trace estimators and spectral densities for `hessdyn.curvature` operators.

Every function returns a frozen result that carries its accuracy (residuals, converged flags, standard
errors) and its cost (operator products, wall seconds).
"""

from hessdyn.solvers.bekas import bekas_diagonal
from hessdyn.solvers.dense_eigh import DenseSpectrum, dense_eigh, full_spectrum
from hessdyn.solvers.eigsh import Method, eigsh_topk
from hessdyn.solvers.hutchinson import hutchinson
from hessdyn.solvers.hutchpp import hutch_plus_plus
from hessdyn.solvers.lanczos_topk import lanczos_topk
from hessdyn.solvers.results import DiagonalResult, EigenResult, SpectralDensityResult, TraceResult, Which
from hessdyn.solvers.slq import Tridiagonal, lanczos_tridiagonal, spectral_density

__all__ = [
    "DenseSpectrum",
    "DiagonalResult",
    "EigenResult",
    "Method",
    "SpectralDensityResult",
    "TraceResult",
    "Tridiagonal",
    "Which",
    "bekas_diagonal",
    "dense_eigh",
    "eigsh_topk",
    "full_spectrum",
    "hutch_plus_plus",
    "hutchinson",
    "lanczos_topk",
    "lanczos_tridiagonal",
    "spectral_density",
]
