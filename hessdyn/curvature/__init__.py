"""Curvature operators of the mean loss over a Hessian set: Hessian, GGN, gradient second moment and
covariance, diagonal conjugates, dense path.

Flat vectors follow `ParamLayout` order (`model.named_parameters()` restricted to the selection).
"""

from hessdyn.curvature.build import Curvature, curvature_operator, flat_gradient
from hessdyn.curvature.dense import dense_matrix, exact_diagonal
from hessdyn.curvature.distributed import (
    DistributedOperator,
    DistributedRisk,
    RankFailure,
    RanksDiverged,
    distributed_curvature_operator,
    distributed_risk,
)
from hessdyn.curvature.ggn import GGNOperator
from hessdyn.curvature.gradient_moments import (
    CovarianceOperator,
    GradientMomentOperator,
    MomentBackend,
    SecondMomentOperator,
)
from hessdyn.curvature.hessian import HessianOperator, HvpBackend
from hessdyn.curvature.mode import HessianMode
from hessdyn.curvature.moment_diagonals import GradientMomentDiagonals, gradient_moment_diagonals
from hessdyn.curvature.operator import (
    CurvatureOperator,
    DiagonalConjugate,
    MatrixOperator,
    NonFiniteCurvature,
)
from hessdyn.curvature.params import ParamLayout
from hessdyn.curvature.per_sample import PerSampleGradientsUndefined
from hessdyn.curvature.risk import (
    EmpiricalRisk,
    HessianSet,
    LossFn,
    LossGradient,
    cast_model,
    has_batchnorm,
    select_hessian_set,
)
from hessdyn.curvature.sharding import Shard, shard_hessian_set
from hessdyn.curvature.three_layer_factors import is_three_layer
from hessdyn.curvature.three_layer_traces import ThreeLayerTraces, three_layer_traces

__all__ = [
    "CovarianceOperator",
    "Curvature",
    "CurvatureOperator",
    "DiagonalConjugate",
    "DistributedOperator",
    "DistributedRisk",
    "EmpiricalRisk",
    "GGNOperator",
    "GradientMomentDiagonals",
    "GradientMomentOperator",
    "HessianMode",
    "HessianOperator",
    "HessianSet",
    "HvpBackend",
    "LossFn",
    "LossGradient",
    "MatrixOperator",
    "MomentBackend",
    "NonFiniteCurvature",
    "ParamLayout",
    "PerSampleGradientsUndefined",
    "RankFailure",
    "RanksDiverged",
    "SecondMomentOperator",
    "Shard",
    "ThreeLayerTraces",
    "cast_model",
    "curvature_operator",
    "dense_matrix",
    "exact_diagonal",
    "distributed_curvature_operator",
    "distributed_risk",
    "flat_gradient",
    "gradient_moment_diagonals",
    "has_batchnorm",
    "is_three_layer",
    "select_hessian_set",
    "shard_hessian_set",
    "three_layer_traces",
]
