"""In-memory dataset containers and the steps every loader shares: subsets, normalization, device move."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch import Tensor

from hessdyn.config.errors import HessdynError
from hessdyn.data.labels import LabelSource, apply_random_labels, labels_digest


@dataclass(frozen=True, eq=False)
class TensorSplit:
    """One split held as tensors: ``x`` ``(N, *input_shape)`` floating, ``y`` ``(N,)`` int64, same device."""

    x: Tensor
    y: Tensor

    def __post_init__(self) -> None:
        if self.x.shape[0] != self.y.shape[0]:
            raise ValueError(f"x has {self.x.shape[0]} rows but y has {self.y.shape[0]}")
        if self.y.dtype != torch.int64 or self.y.dim() != 1:
            raise ValueError(
                f"y must be a 1-d int64 tensor, got {self.y.dtype} with shape {tuple(self.y.shape)}"
            )

    def __len__(self) -> int:
        return int(self.y.shape[0])


Augment = Callable[[Tensor, torch.Generator], Tensor]


@dataclass(frozen=True, eq=False)
class DatasetSplits:
    """A whole dataset in memory. ``augment`` maps a training batch to an augmented batch of the same
    shape using the given generator (``None`` when augmentation is off); ``info`` is JSON-serializable
    provenance (source, sizes, normalization, seeds, file checksums)."""

    name: str
    train: TensorSplit
    test: TensorSplit
    input_shape: tuple[int, ...]
    num_classes: int
    augment: Augment | None = None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Normalization:
    """Per-channel (images ``(N, C, H, W)``) or global (anything else) map ``(x - mean) / std``."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def _view(self, values: tuple[float, ...], x: Tensor) -> Tensor:
        shape = (1, len(values), 1, 1) if x.dim() == 4 else (1,) * x.dim()
        return torch.tensor(values, dtype=x.dtype, device=x.device).reshape(shape)

    def apply_(self, x: Tensor) -> Tensor:
        """Normalize ``x`` in place and return it."""
        return x.sub_(self._view(self.mean, x)).div_(self._view(self.std, x))

    def apply(self, x: Tensor) -> Tensor:
        return self.apply_(x.clone())


def fit_normalization(x: Tensor, chunk: int = 2048) -> Normalization:
    """Mean and population std of the training inputs ``x``, accumulated in float64 over chunks of rows:
    per channel when ``x`` is ``(N, C, H, W)``, one scalar otherwise. A constant channel gets std 1 (it
    is only centred)."""

    def rows(t: Tensor) -> Tensor:  # (n, C, rest) for images, (n, 1, rest) otherwise
        return t.reshape(t.shape[0], t.shape[1], -1) if x.dim() == 4 else t.reshape(t.shape[0], 1, -1)

    count = x.numel() // (x.shape[1] if x.dim() == 4 else 1)
    total = cast(Tensor, sum(rows(c.double()).sum(dim=(0, 2)) for c in x.split(chunk)))
    mean = total / count
    sq = cast(
        Tensor, sum(((rows(c.double()) - mean[None, :, None]) ** 2).sum(dim=(0, 2)) for c in x.split(chunk))
    )
    std = (sq / count).sqrt()
    std = torch.where(std > 0, std, torch.ones_like(std))
    return Normalization(tuple(mean.tolist()), tuple(std.tolist()))


def stratified_subset(labels: Tensor, n: int, seed: int) -> Tensor:
    """Sorted indices of ``n`` examples drawn without replacement, class proportions kept.

    Each class gets ``floor(n * share)`` examples, the remaining ones go to the classes with the largest
    fractional parts (ties: lower class index first); within a class the examples are a uniformly random
    choice from a generator seeded with ``seed``. Deterministic for a given ``(labels, n, seed)``.
    """
    total = int(labels.shape[0])
    if not 0 < n <= total:
        raise ValueError(f"subset size must be in [1, {total}], got {n}")
    classes, counts = torch.unique(labels, return_counts=True)
    exact = counts.double() * n / total
    quota = exact.floor().long()
    remainder = n - int(quota.sum())
    if remainder:
        order = sorted(range(len(classes)), key=lambda i: (-(exact[i] - quota[i]).item(), i))
        for i in order[:remainder]:
            quota[i] += 1
    gen = torch.Generator().manual_seed(int(seed))
    chosen = []
    for c, q in zip(classes.tolist(), quota.tolist(), strict=True):
        members = torch.nonzero(labels == c, as_tuple=True)[0]
        chosen.append(members[torch.randperm(len(members), generator=gen)[:q]])
    return torch.cat(chosen).sort().values


def indices_digest(indices: Tensor) -> str:
    """Short sha1 of an index tensor, recorded so a subset can be compared across runs without storing it."""
    return hashlib.sha1(indices.to(torch.int64).cpu().numpy().tobytes()).hexdigest()[:16]


def take_subset(
    x: Tensor, y: Tensor, n: int | None, seed: int, dataset: str, split: str
) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """``(x, y)`` restricted to a stratified seeded subset of size ``n`` (all when ``n`` is None)."""
    total = int(y.shape[0])
    if n is None or n == total:
        return x, y, {}
    if n > total:
        raise HessdynError(
            f"dataset.n_{split}={n} exceeds the {total} {split} examples of {dataset}: "
            f"lower it or set dataset.n_{split}=null"
        )
    idx = stratified_subset(y, n, seed)
    return x[idx], y[idx], {f"{split}_subset_sha1": indices_digest(idx)}


def finalize(
    name: str,
    train: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    num_classes: int,
    cfg: Any,
    device: torch.device,
    dtype: torch.dtype,
    info: dict[str, Any],
    scale: float = 1.0,
    augment_factory: Callable[[Normalization | None], Augment] | None = None,
    subset: bool = True,
    labels: LabelSource | None = None,
) -> DatasetSplits:
    """Shared tail of every loader: subset, random labels, move, scale, normalize.

    ``train``/``test`` are CPU tensors ``(x, y)``: ``x`` raw inputs (e.g. uint8 pixels), ``y`` labels.
    Subsets of ``cfg.n_train``/``cfg.n_test`` examples (stratified, seeded by ``cfg.subset_seed``) are
    taken first when ``subset``; then ``cfg.random_label_fraction`` of the training labels are redrawn
    (:mod:`hessdyn.data.labels`; draws from ``labels``, default a stream of ``cfg.subset_seed``), the
    test labels never; then ``x`` is copied to ``device`` as ``dtype`` and divided by
    ``scale`` (255 for 8-bit pixels); with ``cfg.normalize`` both splits are normalized with the mean/std
    of the (subset) training split. The raw inputs are never modified.
    """
    (x_tr, y_tr), (x_te, y_te) = train, test
    info = dict(info)
    info["train_size_full"], info["test_size_full"] = len(y_tr), len(y_te)
    if subset:
        x_tr, y_tr, extra_tr = take_subset(x_tr, y_tr, cfg.n_train, cfg.subset_seed, name, "train")
        x_te, y_te, extra_te = take_subset(x_te, y_te, cfg.n_test, cfg.subset_seed, name, "test")
        info.update(extra_tr, **extra_te, subset_seed=int(cfg.subset_seed))
    info["train_size"], info["test_size"] = len(y_tr), len(y_te)
    source = labels if labels is not None else LabelSource.from_seed("subset_seed", cfg.subset_seed)
    # synthetic data's former key label_noise is read as random_label_fraction (they may not differ)
    fraction = float(getattr(cfg, "random_label_fraction", 0.0) or getattr(cfg, "label_noise", 0.0) or 0.0)
    y_tr, info["random_labels"] = apply_random_labels(y_tr.to(torch.int64), fraction, num_classes, source)
    info["train_labels_sha1"] = labels_digest(y_tr)
    x_tr = x_tr.to(device=device, dtype=dtype, copy=True)
    x_te = x_te.to(device=device, dtype=dtype, copy=True)
    if scale != 1.0:
        x_tr.div_(scale)
        x_te.div_(scale)
    info["input_scale"] = float(scale)
    norm = fit_normalization(x_tr) if cfg.normalize else None
    if norm is not None:
        norm.apply_(x_tr)
        norm.apply_(x_te)
        info["normalization"] = {
            "mean": list(norm.mean),
            "std": list(norm.std),
            "per": "channel" if x_tr.dim() == 4 else "global",
            "fit_on": "train split as used (after any n_train subset), inputs divided by input_scale",
        }
    else:
        info["normalization"] = None
    info["train_class_counts"] = torch.bincount(y_tr, minlength=num_classes).tolist()
    augment = augment_factory(norm) if augment_factory is not None else None
    info["augment"] = augment is not None
    return DatasetSplits(
        name=name,
        train=TensorSplit(x_tr, y_tr.to(device=device, dtype=torch.int64)),
        test=TensorSplit(x_te, y_te.to(device=device, dtype=torch.int64)),
        input_shape=tuple(int(d) for d in x_tr.shape[1:]),
        num_classes=int(num_classes),
        augment=augment,
        info=info,
    )
