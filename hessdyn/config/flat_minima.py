"""Value checks of the flat-minima arms (HSR regularization, SAM), for the config schemas to call.

Each raises :class:`~hessdyn.config.errors.ConfigValueError`: one line naming the key, what is wrong and
the valid range or choices, before anything is written. Plain functions of plain values, so the schema's
``__post_init__`` (or a cross-group check such as "hsr needs model=three_layer") can call them.
"""

from __future__ import annotations

import math

from hessdyn.config.errors import ConfigValueError

REGULARIZERS: tuple[str, ...] = ("none", "hsr")
SMOOTH_ACTIVATIONS: tuple[str, ...] = ("sigmoid", "tanh", "softplus")
SAM_BASES: tuple[str, ...] = ("sgd", "momentum", "adam")
ASAM_ETA = 0.01  # Kwon et al.'s offset in T_w = |w| + η; the one default of the schema, the checks and SAM


def check_hsr_beta(beta: float) -> None:
    """``regularizer.beta`` of hsr: a finite number >= 0 (0 trains as ``none`` but still computes the bound)."""
    if not (math.isfinite(beta) and beta >= 0):
        raise ConfigValueError("regularizer.beta", f"must be a finite number >= 0, got {beta}")


def check_regularizer(name: str, beta: float, model: str, activation: str | None) -> None:
    """``regularizer=<name>`` with ``regularizer.beta`` on ``model=<model>`` whose activation is ``activation``.

    hsr needs beta >= 0, the three-layer net (the only model with an exact Wolkowicz–Styan bound; see
    hessdyn.training.hsr for why no stochastic variant is offered) and a smooth activation (the bound's
    gradient needs φ'').
    """
    if name not in REGULARIZERS:
        raise ConfigValueError(
            "regularizer", f"unknown regularizer '{name}' (choose from: {', '.join(REGULARIZERS)})"
        )
    if name == "none":
        return
    check_hsr_beta(beta)
    if model != "three_layer":
        raise ConfigValueError(
            "regularizer",
            f"hsr needs model=three_layer (the exact Wolkowicz–Styan bound exists for it only), got model={model}; "
            "use model=three_layer or regularizer=none",
        )
    if activation not in SMOOTH_ACTIVATIONS:
        raise ConfigValueError(
            "model.activation",
            f"hsr needs a smooth activation (choose from: {', '.join(SMOOTH_ACTIVATIONS)}), got {activation}",
        )


def check_sam(rho: float, base: str, eta: float = ASAM_ETA) -> None:
    """``optimizer=sam`` with ``optimizer.rho`` > 0, ``optimizer.base`` in sgd|momentum|adam, ``optimizer.eta``
    (ASAM's offset in T_w = |w| + η) >= 0."""
    if not (math.isfinite(rho) and rho > 0):
        raise ConfigValueError("optimizer.rho", f"must be a finite number > 0, got {rho}")
    if base not in SAM_BASES:
        raise ConfigValueError(
            "optimizer.base", f"unknown base optimizer '{base}' (choose from: {', '.join(SAM_BASES)})"
        )
    if not (math.isfinite(eta) and eta >= 0):
        raise ConfigValueError("optimizer.eta", f"must be a finite number >= 0, got {eta}")
