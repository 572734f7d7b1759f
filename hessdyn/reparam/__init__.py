"""Dinh et al. (2017) α-rescaling of ReLU MLPs and sharpness measures, with which of them are invariant.

Pure functions of models, flat parameter vectors and curvature operators (hessdyn.curvature); the loss is
evaluated through :class:`hessdyn.curvature.EmpiricalRisk`'s flat-θ view. No files, no configuration.
"""

from hessdyn.reparam.diagonal_sharpness import WeightedHessianDiagonal, weighted_hessian_diagonal
from hessdyn.reparam.rescaling import (
    AlphaRescaling,
    AlphaScaling,
    alpha_grid,
    alpha_rescale,
    max_output_difference,
    predicted_rescaled_hessian,
    predicted_rescaled_operator,
    rescalable_layers,
)
from hessdyn.reparam.sharpness import (
    EpsilonSharpness,
    SharpnessMeasures,
    epsilon_sharpness,
    local_top_eigenvalue,
    quadratic_form,
    scale_invariant_operator,
    sharpness_measures,
)

__all__ = [
    "AlphaRescaling",
    "AlphaScaling",
    "EpsilonSharpness",
    "SharpnessMeasures",
    "WeightedHessianDiagonal",
    "alpha_grid",
    "alpha_rescale",
    "epsilon_sharpness",
    "local_top_eigenvalue",
    "max_output_difference",
    "predicted_rescaled_hessian",
    "predicted_rescaled_operator",
    "quadratic_form",
    "rescalable_layers",
    "scale_invariant_operator",
    "sharpness_measures",
    "weighted_hessian_diagonal",
]
