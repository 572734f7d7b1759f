"""The report's figures: one function per figure, each returning the figure and the data drawn.

A function returns None when no run has the data it needs; the page then lists the figure as not
computed instead of drawing it empty. Numbers come from :mod:`hessdyn.report.aggregate`; nothing here
computes a quantity. Lines are means over seeds, bands the t-interval of the mean (see ``aggregate``),
dashed lines ending in × individual diverged/failed runs.
"""

from __future__ import annotations

from hessdyn.report.figures.base import FigureResult, FigureSpec
from hessdyn.report.figures.curvature import (
    density_figure,
    eigenvalues_figure,
    sharpness_figure,
    spectral_range_figure,
    stability_figure,
    trace_figure,
    ws_bound_figure,
)
from hessdyn.report.figures.localization import ipr_figure, layer_mass_figure
from hessdyn.report.figures.noise import (
    noise_gamma_figure,
    noise_generalization_figure,
    noise_overlap_figure,
    noise_trace_ratio_figure,
)
from hessdyn.report.figures.reparam import reparam_figure
from hessdyn.report.figures.training import accuracy_figure, gap_figure, loss_figure
from hessdyn.report.figures.trajectory import (
    aging_curves_figure,
    aging_heatmap_figure,
    alignment_figure,
    displacement_figure,
    events_figure,
    overlap_endpoints_figure,
)

__all__ = ["FIGURES", "FigureResult", "FigureSpec"]

FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec("loss", "Loss", loss_figure, "metrics/train.csv rows with source=eval"),
    FigureSpec("accuracy", "Accuracy", accuracy_figure, "metrics/train.csv rows with source=eval"),
    FigureSpec("gap", "Train/test gap", gap_figure, "metrics/train.csv rows with source=eval"),
    FigureSpec(
        "eigenvalues", "Top Hessian eigenvalues", eigenvalues_figure, "analysis spectrum.csv (which=top)"
    ),
    FigureSpec(
        "stability",
        "Sharpness against the stability threshold",
        stability_figure,
        "summary.csv stability_threshold or precond_threshold (optimizer metric group)",
    ),
    FigureSpec(
        "sharpness",
        "Sharpness during training (probe)",
        sharpness_figure,
        "metrics/sharpness.csv (trainer.sharpness.every; off by default)",
    ),
    FigureSpec(
        "ws_bound",
        "λmax and the Wolkowicz–Styan bound",
        ws_bound_figure,
        "summary.csv ws_bound, ws_bound_exact (trace metric group)",
    ),
    FigureSpec(
        "spectral_range",
        "Spectral range λmax − λmin",
        spectral_range_figure,
        "summary.csv lambda_min (bottom metric group)",
    ),
    FigureSpec("trace", "Hessian trace", trace_figure, "summary.csv trace (trace metric group)"),
    FigureSpec(
        "displacement",
        "Eigenvector displacement",
        displacement_figure,
        "trajectory.csv displacement_matched_plain/_cluster, displacement_ranked (trajectory metric group)",
    ),
    FigureSpec(
        "overlap_endpoints",
        "Subspace overlap with the first and last checkpoint",
        overlap_endpoints_figure,
        "trajectory.csv subspace_overlap (trajectory metric group)",
    ),
    FigureSpec(
        "events",
        "Eigenvalue crossings and clusters",
        events_figure,
        "events.csv rows (trajectory metric group; empty when no eigenvalue crossed or clustered)",
    ),
    FigureSpec(
        "aging_heatmap",
        "Two-time overlap (heatmap)",
        aging_heatmap_figure,
        "trajectory.csv subspace_overlap for all pairs (trajectory metric group)",
    ),
    FigureSpec(
        "aging_curves",
        "Two-time overlap against lag (aging)",
        aging_curves_figure,
        "trajectory.csv subspace_overlap for all pairs (trajectory metric group)",
    ),
    FigureSpec(
        "ipr",
        "Eigenvector localization (normalized IPR)",
        ipr_figure,
        "spectrum.csv ipr_normalized (localization metric group)",
    ),
    FigureSpec(
        "layer_mass",
        "Eigenvector mass per layer",
        layer_mass_figure,
        "layer_mass.csv (localization metric group)",
    ),
    FigureSpec(
        "density",
        "Spectral density snapshots",
        density_figure,
        "density.csv (density metric group, off by default)",
    ),
    FigureSpec(
        "alignment",
        "Gradient and update alignment",
        alignment_figure,
        "summary.csv grad_alignment/update_alignment (alignment metric group)",
    ),
    FigureSpec(
        "reparam",
        "Sharpness under reparametrization",
        reparam_figure,
        "reparam.csv (reparam metric group, ReLU MLPs only)",
    ),
    FigureSpec(
        "noise_overlap",
        "Top-subspace overlap of gradient noise and curvature",
        noise_overlap_figure,
        "noise.csv (noise metric group, off by default)",
    ),
    FigureSpec(
        "noise_gamma",
        "Diagonal power law of noise against curvature",
        noise_gamma_figure,
        "noise_gamma.csv (noise metric group, off by default)",
    ),
    FigureSpec(
        "noise_trace_ratio",
        "Gradient noise per unit of curvature",
        noise_trace_ratio_figure,
        "noise.csv (noise metric group, off by default)",
    ),
    FigureSpec(
        "noise_generalization",
        "Generalization gap against curvature measures",
        noise_generalization_figure,
        "noise.csv and summary.csv at the last checkpoint, final evaluations (noise metric group)",
    ),
)
