"""Curvature operators of the mean loss over a Hessian set: Hessian, GGN, diagonal conjugates, dense path.

Flat vectors follow `ParamLayout` order (`model.named_parameters()` restricted to the selection).
"""

from hessdyn.curvature.build import Curvature, curvature_operator, flat_gradient
from hessdyn.curvature.dense import dense_matrix
from hessdyn.curvature.ggn import GGNOperator
from hessdyn.curvature.hessian import HessianOperator, HvpBackend
from hessdyn.curvature.mode import HessianMode
from hessdyn.curvature.operator import (
    CurvatureOperator,
    DiagonalConjugate,
    MatrixOperator,
    NonFiniteCurvature,
)
from hessdyn.curvature.params import ParamLayout
from hessdyn.curvature.risk import (
    EmpiricalRisk,
    HessianSet,
    LossFn,
    LossGradient,
    cast_model,
    select_hessian_set,
)
from hessdyn.curvature.three_layer_traces import ThreeLayerTraces, three_layer_traces

__all__ = [
    "Curvature",
    "CurvatureOperator",
    "DiagonalConjugate",
    "EmpiricalRisk",
    "GGNOperator",
    "HessianMode",
    "HessianOperator",
    "HessianSet",
    "HvpBackend",
    "LossFn",
    "LossGradient",
    "MatrixOperator",
    "NonFiniteCurvature",
    "ParamLayout",
    "ThreeLayerTraces",
    "cast_model",
    "curvature_operator",
    "dense_matrix",
    "flat_gradient",
    "select_hessian_set",
    "three_layer_traces",
]
