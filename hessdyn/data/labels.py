"""Random labels for every dataset (``dataset.random_label_fraction``): the one mechanism.

Exactly ``round(fraction · N)`` training examples, chosen uniformly without replacement, get a label drawn
uniformly from all classes; a drawn label may equal the true one, so about ``(1 − 1/C)`` of them change (Zhang
et al. 2017's partially random labels; Li et al. 2019 make tasks harder this way). Only the training split is
touched, after its ``n_train`` subset: the test split keeps its true labels, and the analysis' Hessian set,
drawn from the training split of the same config, sees the same corrupted labels.

The draws come from a generator of their own, derived from the dataset's data seed (``data_seed`` for synthetic
data, ``subset_seed`` otherwise), so they do not depend on the training seed, and changing the fraction changes
neither the inputs nor the test split. ``info`` records the fraction, the counts and digests of the redrawn
indices and of the final training labels (which ``hessdyn analyze`` checks against the run's run.json).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

_LABEL_STREAM = 0x1ABE1  # mixed into the seed: the label stream is independent of the subset draw


@dataclass(frozen=True)
class RandomLabels:
    """labels (N,): the training labels after randomization; redrawn: sorted indices whose label was drawn
    anew; changed: how many of those differ from the true label."""

    labels: Tensor
    redrawn: Tensor
    changed: int


@dataclass(frozen=True)
class LabelSource:
    """Where the label draws come from: a CPU generator of their own, and the config key and value of the
    seed behind it (recorded in run.json)."""

    generator: torch.Generator
    seed_key: str
    seed: int

    @classmethod
    def from_seed(cls, seed_key: str, seed: int) -> LabelSource:
        """A generator derived from ``seed`` and a fixed stream tag, independent of every other draw made
        from the same seed (the subset, the split)."""
        state = np.random.SeedSequence([int(seed), _LABEL_STREAM]).generate_state(1, dtype=np.uint64)[0]
        return cls(torch.Generator().manual_seed(int(state) >> 1), seed_key, int(seed))


def randomize_labels(y: Tensor, fraction: float, num_classes: int, gen: torch.Generator) -> RandomLabels:
    """A copy of the CPU labels ``y`` in which ``round(fraction · len(y))`` random entries get uniformly random
    labels from ``range(num_classes)`` (see the module docstring)."""
    count = round(fraction * len(y))
    idx = torch.randperm(len(y), generator=gen)[:count].sort().values
    labels = y.clone()
    labels[idx] = torch.randint(0, num_classes, (count,), generator=gen)
    return RandomLabels(labels, idx, int((labels != y).sum()))


def labels_digest(y: Tensor) -> str:
    """Short sha1 of an integer vector (labels, indices), recorded in run.json so a later stage can check that
    it sees the same labels without storing them."""
    return hashlib.sha1(y.to(torch.int64).cpu().numpy().tobytes()).hexdigest()[:16]


def apply_random_labels(
    y: Tensor, fraction: float, num_classes: int, source: LabelSource
) -> tuple[Tensor, dict[str, Any]]:
    """``y`` with a ``fraction`` of random labels (unchanged when it is 0) and the provenance of the draw for
    ``info["random_labels"]``."""
    info: dict[str, Any] = {"fraction": float(fraction), source.seed_key: source.seed}
    if fraction <= 0.0:
        return y, {**info, "redrawn": 0, "changed": 0}
    result = randomize_labels(y, fraction, num_classes, source.generator)
    info.update(
        redrawn=len(result.redrawn), changed=result.changed, redrawn_sha1=labels_digest(result.redrawn)
    )
    return result.labels, info
