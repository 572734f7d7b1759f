"""Trajectory metrics of Hessian eigenvectors: pure functions of eigenvector blocks ``(k, P)`` (unit rows,
eigenvalues descending), parameter vectors and traces. No files, no configuration."""

from hessdyn.trajectory.alignment import TopSpaceAlignment, top_space_alignment, update_alignment
from hessdyn.trajectory.clusters import degenerate_clusters
from hessdyn.trajectory.layout import LayoutEntry, as_layout, layout_from_model
from hessdyn.trajectory.localization import (
    LayerMass,
    MassConcentration,
    ipr,
    layer_mass,
    mass_concentration,
    normalized_ipr,
)
from hessdyn.trajectory.matching import Crossing, EigenvectorMatch, MatchedGroup, match_eigenvectors
from hessdyn.trajectory.nulls import IprSummary, RandomIprNull, expected_random_ipr, random_ipr_null
from hessdyn.trajectory.preconditioners import (
    DiagonalPreconditioner,
    adam_preconditioner,
    optimizer_param_ids,
    rmsprop_preconditioner,
)
from hessdyn.trajectory.stability import (
    ThresholdComparison,
    adam_threshold,
    compare_to_threshold,
    heavy_ball_threshold,
    nesterov_threshold,
    sgd_threshold,
)
from hessdyn.trajectory.subspace import (
    SubspaceComparison,
    compare_subspaces,
    grassmann_distance,
    principal_angles,
    subspace_overlap,
)
from hessdyn.trajectory.ws_bound import (
    Interval,
    WolkowiczStyanBound,
    WolkowiczStyanEstimate,
    ws_bound_from_eigenvalues,
    ws_bound_from_estimates,
    ws_bound_from_matrix,
    ws_bound_from_traces,
)

__all__ = [
    "Crossing",
    "DiagonalPreconditioner",
    "EigenvectorMatch",
    "Interval",
    "IprSummary",
    "LayerMass",
    "LayoutEntry",
    "MassConcentration",
    "MatchedGroup",
    "RandomIprNull",
    "SubspaceComparison",
    "ThresholdComparison",
    "TopSpaceAlignment",
    "WolkowiczStyanBound",
    "WolkowiczStyanEstimate",
    "adam_preconditioner",
    "adam_threshold",
    "as_layout",
    "compare_subspaces",
    "compare_to_threshold",
    "degenerate_clusters",
    "expected_random_ipr",
    "grassmann_distance",
    "heavy_ball_threshold",
    "ipr",
    "layer_mass",
    "layout_from_model",
    "mass_concentration",
    "match_eigenvectors",
    "nesterov_threshold",
    "normalized_ipr",
    "optimizer_param_ids",
    "principal_angles",
    "random_ipr_null",
    "rmsprop_preconditioner",
    "sgd_threshold",
    "subspace_overlap",
    "top_space_alignment",
    "update_alignment",
    "ws_bound_from_eigenvalues",
    "ws_bound_from_estimates",
    "ws_bound_from_matrix",
    "ws_bound_from_traces",
]
