"""Flat parameter vectors: which parameters, in what order, at which offsets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn


def _matches(name: str, selector: str) -> bool:
    return name == selector or name.startswith(selector + ".")


@dataclass(frozen=True)
class ParamLayout:
    """Names, shapes and offsets of the selected parameters inside a flat vector of length `numel`.

    Order is `model.named_parameters()` order restricted to the selection; every flat vector,
    eigenvector row and operator column in hessdyn uses this order.
    """

    names: tuple[str, ...]
    shapes: tuple[torch.Size, ...]
    slices: tuple[slice, ...] = field(init=False)
    numel: int = field(init=False)

    def __post_init__(self) -> None:
        if len(self.names) != len(self.shapes):
            raise ValueError(f"{len(self.names)} names but {len(self.shapes)} shapes")
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"duplicate parameter names in {self.names}")
        slices, offset = [], 0
        for shape in self.shapes:
            n = int(torch.Size(shape).numel())
            slices.append(slice(offset, offset + n))
            offset += n
        object.__setattr__(self, "shapes", tuple(torch.Size(s) for s in self.shapes))
        object.__setattr__(self, "slices", tuple(slices))
        object.__setattr__(self, "numel", offset)

    @classmethod
    def from_model(cls, model: nn.Module, select: Sequence[str] | None = None) -> ParamLayout:
        """Layout of the trainable parameters of `model`, optionally restricted to `select`.

        `select` holds parameter names or module prefixes ("0" selects "0.weight" and "0.bias").
        A selector that matches no trainable parameter is an error, so a typo cannot silently
        shrink the block.
        """
        trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        if select is not None:
            if isinstance(select, str):
                select = [select]
            unmatched = [s for s in select if not any(_matches(n, s) for n, _ in trainable)]
            if unmatched:
                valid = ", ".join(n for n, _ in trainable)
                raise ValueError(
                    f"parameter selector(s) {unmatched} match no trainable parameter; valid names: {valid}"
                )
            trainable = [(n, p) for n, p in trainable if any(_matches(n, s) for s in select)]
        if not trainable:
            raise ValueError("the model has no trainable parameters to build a Hessian over")
        return cls(tuple(n for n, _ in trainable), tuple(p.shape for _, p in trainable))

    def slice_of(self, name: str) -> slice:
        """Slice of parameter `name` inside a flat vector."""
        try:
            return self.slices[self.names.index(name)]
        except ValueError:
            raise KeyError(f"{name!r} is not in this layout; names: {', '.join(self.names)}") from None

    def mask(
        self,
        select: Sequence[str],
        *,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """(numel,) vector that is 1 on parameters matched by names/prefixes in `select`, else 0."""
        out = torch.zeros(self.numel, dtype=dtype, device=device)
        for name, sl in zip(self.names, self.slices, strict=True):
            if any(_matches(name, s) for s in select):
                out[sl] = 1
        return out

    def flatten(self, tensors: Sequence[torch.Tensor] | Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Concatenate per-parameter tensors of shape (*lead, *shape) into (*lead, numel)."""
        if isinstance(tensors, Mapping):
            tensors = [tensors[n] for n in self.names]
        if len(tensors) != len(self.names):
            raise ValueError(f"expected {len(self.names)} tensors, got {len(tensors)}")
        parts = []
        for t, shape in zip(tensors, self.shapes, strict=True):
            lead = t.shape[: t.dim() - len(shape)]
            if t.shape[len(lead) :] != shape:
                raise ValueError(
                    f"tensor of shape {tuple(t.shape)} does not end in parameter shape {tuple(shape)}"
                )
            parts.append(t.reshape(*lead, shape.numel()))
        return torch.cat(parts, dim=-1)

    def unflatten(self, vec: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Split a (*lead, numel) tensor into views of shape (*lead, *shape), one per parameter."""
        if vec.shape[-1] != self.numel:
            raise ValueError(f"last dimension {vec.shape[-1]} != layout size {self.numel}")
        lead = vec.shape[:-1]
        return tuple(
            vec[..., sl].reshape(*lead, *shape) for sl, shape in zip(self.slices, self.shapes, strict=True)
        )
