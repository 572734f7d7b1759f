"""Generated classification data: a Gaussian mixture or a random teacher network, all from ``data_seed``.

Every random draw comes from local CPU ``torch.Generator`` streams derived from ``data_seed`` (never the
global RNG), one stream per purpose, so the task (class means / teacher weights), the training inputs,
the test inputs and the label noise do not change when an unrelated size changes (e.g. ``n_train`` does
not change the test set). Generated in float64 on the CPU, then cast and moved.

* ``gaussian_mixture``: class ``c`` has mean ``mu_c = separation * u_c`` with ``u_c`` uniform on the unit
  sphere of ``R^dim`` (so pairwise mean distances are about ``separation * sqrt(2)`` in high dimension)
  and identity covariance (unit within-class noise). Labels are balanced: a random permutation of
  ``i mod num_classes``.
* ``teacher``: ``x ~ N(0, I_dim)``, label ``argmax(tanh(x W1 + b1) W2 + b2)`` for a random one-hidden-layer
  tanh teacher of width ``teacher_width`` with ``W1 ~ N(0, 1/dim)``, ``W2 ~ N(0, 1/teacher_width)``,
  ``b1, b2 ~ N(0, 0.1^2)``. Classes need not be balanced; ``separation`` is not used.

Random labels (``random_label_fraction``, formerly ``label_noise``) follow the one mechanism of every
dataset (:mod:`hessdyn.data.labels`), drawn from this dataset's ``noise`` stream of ``data_seed`` (the
stream ``label_noise`` always used, so runs written before the rename get the same labels). ``subset_seed``
is not used: ``n_train``/``n_test`` are the generated sizes.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

import numpy as np
import torch
from torch import Tensor

from hessdyn.data.labels import LabelSource
from hessdyn.data.splits import DatasetSplits, finalize

_STREAMS = ("task", "train", "test", "noise")


def _generators(data_seed: int) -> dict[str, torch.Generator]:
    seeds = np.random.SeedSequence(int(data_seed)).generate_state(len(_STREAMS), dtype=np.uint64)
    return {name: torch.Generator().manual_seed(int(s) >> 1) for name, s in zip(_STREAMS, seeds, strict=True)}


def _mixture(
    cfg: Any, gens: dict[str, torch.Generator]
) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    d, c = int(cfg.dim), int(cfg.num_classes)
    means = torch.randn(c, d, generator=gens["task"], dtype=torch.float64)
    means = float(cfg.separation) * means / means.norm(dim=1, keepdim=True)

    def sample(n: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        y = (torch.arange(n) % c)[torch.randperm(n, generator=gen)]
        x = means[y] + torch.randn(n, d, generator=gen, dtype=torch.float64)
        return x, y

    return sample(int(cfg.n_train), gens["train"]), sample(int(cfg.n_test), gens["test"])


def _teacher(
    cfg: Any, gens: dict[str, torch.Generator]
) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    d, c, h = int(cfg.dim), int(cfg.num_classes), int(cfg.teacher_width)
    g = gens["task"]
    w1 = torch.randn(d, h, generator=g, dtype=torch.float64) / d**0.5
    b1 = 0.1 * torch.randn(h, generator=g, dtype=torch.float64)
    w2 = torch.randn(h, c, generator=g, dtype=torch.float64) / h**0.5
    b2 = 0.1 * torch.randn(c, generator=g, dtype=torch.float64)

    def sample(n: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        x = torch.randn(n, d, generator=gen, dtype=torch.float64)
        return x, (torch.tanh(x @ w1 + b1) @ w2 + b2).argmax(dim=1)

    return sample(int(cfg.n_train), gens["train"]), sample(int(cfg.n_test), gens["test"])


def load_synthetic(cfg: Any, device: torch.device, dtype: torch.dtype) -> DatasetSplits:
    """Generate the dataset described by ``cfg`` (see module doc); input shape ``(dim,)``."""
    kind = cfg.kind.value if isinstance(cfg.kind, Enum) else str(cfg.kind)
    gens = _generators(cfg.data_seed)
    make = {"gaussian_mixture": _mixture, "teacher": _teacher}.get(kind)
    if make is None:
        raise ValueError(f"unknown synthetic kind {kind!r}")
    (x_tr, y_tr), (x_te, y_te) = make(cfg, gens)
    info = {
        "source": f"generated ({kind})",
        "kind": kind,
        "data_seed": int(cfg.data_seed),
        "test_class_counts": torch.bincount(y_te, minlength=int(cfg.num_classes)).tolist(),
    }
    labels = LabelSource(gens["noise"], "data_seed", int(cfg.data_seed))
    return finalize(
        "synthetic",
        (x_tr, y_tr),
        (x_te, y_te),
        int(cfg.num_classes),
        cfg,
        device,
        dtype,
        info,
        subset=False,
        labels=labels,
    )
