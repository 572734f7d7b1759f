"""Localization of eigenvectors: inverse participation ratio, mass per parameter tensor, top entries.

All functions treat each row as the direction it spans and renormalize it to unit norm first (stored
eigenvectors are float32 and only unit up to round-off), so results do not depend on the row's scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hessdyn.trajectory._blocks import ArrayLike, as_block, as_vector, to_numpy
from hessdyn.trajectory.layout import LayoutLike, as_layout


def ipr(vectors: ArrayLike) -> np.ndarray:
    """Inverse participation ratio ``IPR(v) = Σ_j v_j⁴`` of each unit-normalized row.

    Input ``(k, P)`` or ``(P,)``; returns ``(k,)``. IPR is 1 for a basis vector and ``1/P`` for a vector
    spread evenly over all ``P`` entries; ``1/IPR`` is the effective number of entries carrying the mass.
    """
    block = as_block(vectors)
    return to_numpy((block**4).sum(dim=1))


def normalized_ipr(vectors: ArrayLike) -> np.ndarray:
    """``P · IPR / 3``: about 1 for a uniformly random unit vector in R^P, larger when localized.

    Uses ``E[IPR] = 3 / (P + 2)`` for a uniform random unit vector, so the expectation is ``P / (P + 2)``
    (→ 1 as ``P`` grows).
    """
    block = as_block(vectors)
    return block.shape[1] * ipr(block) / 3.0


@dataclass(frozen=True)
class LayerMass:
    """Share of each eigenvector's squared mass ``Σ_{j in tensor} v_j²`` in each parameter tensor.

    ``mass[i, l]`` is the share of row ``i`` in tensor ``names[l]``; rows sum to 1.
    """

    names: tuple[str, ...]
    mass: np.ndarray  # (k, L)


def layer_mass(vectors: ArrayLike, layout: LayoutLike) -> LayerMass:
    """Mass share of each row of a ``(k, P)`` block (or one ``(P,)`` vector) in each tensor of ``layout``."""
    block = as_block(vectors)
    entries = as_layout(layout, size=block.shape[1])
    squared = block**2
    mass = torch.stack([squared[:, entry.slice].sum(dim=1) for entry in entries], dim=1)
    return LayerMass(names=tuple(entry.name for entry in entries), mass=to_numpy(mass))


@dataclass(frozen=True)
class MassConcentration:
    """The entries of one unit vector that carry most of its squared mass, largest first.

    ``count_50`` / ``count_90`` are the smallest numbers of entries whose squared components add up to at
    least 50% / 90% of the mass.
    """

    indices: np.ndarray  # (n,) flat indices into the parameter vector
    values: np.ndarray  # (n,) signed components v_j of the unit-normalized vector
    mass: np.ndarray  # (n,) v_j²
    params: tuple[str, ...]  # (n,) owning tensor names
    multi_indices: tuple[tuple[int, ...], ...]  # (n,) index inside the owning tensor
    count_50: int
    count_90: int
    size: int  # P


def mass_concentration(vector: ArrayLike, layout: LayoutLike, *, top_n: int = 10) -> MassConcentration:
    """Top-``top_n`` entries of a ``(P,)`` vector by squared component, with their owning tensors."""
    v = as_vector(vector)
    v = v / torch.linalg.vector_norm(v)
    entries = sorted(as_layout(layout, size=v.shape[0]), key=lambda entry: entry.slice.start)
    squared = to_numpy(v**2)
    order = np.argsort(-squared, kind="stable")
    cumulative = np.cumsum(squared[order])
    # the tolerance keeps a vector whose mass sits in exactly half of its entries at the exact count
    count_50 = int(np.searchsorted(cumulative, 0.5 - 1e-12) + 1)
    count_90 = int(np.searchsorted(cumulative, 0.9 - 1e-12) + 1)
    top = order[: min(top_n, order.shape[0])]
    starts = np.array([entry.slice.start for entry in entries])
    owners = [entries[int(np.searchsorted(starts, index, side="right") - 1)] for index in top]
    return MassConcentration(
        indices=top.astype(np.int64),
        values=to_numpy(v)[top],
        mass=squared[top],
        params=tuple(owner.name for owner in owners),
        multi_indices=tuple(owner.multi_index(int(index)) for owner, index in zip(owners, top, strict=True)),
        count_50=count_50,
        count_90=count_90,
        size=int(v.shape[0]),
    )
