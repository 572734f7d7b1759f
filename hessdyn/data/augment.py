"""Training-batch augmentation on device tensors: random crop with zero padding plus horizontal flip."""

from __future__ import annotations

import torch
from torch import Tensor

from hessdyn.data.splits import Augment, Normalization


def crop_flip(pad: int = 4, normalization: Normalization | None = None) -> Augment:
    """``augment(x, generator)`` for ``x`` ``(N, C, H, W)``: each image is padded by ``pad`` pixels on
    every side, an ``H x W`` window is cropped at a uniformly random offset in ``[0, 2 pad]``, and the
    result is mirrored left-right with probability 1/2 (torchvision's ``RandomCrop(pad=4)`` +
    ``RandomHorizontalFlip``).

    The padding is a black pixel *before* normalization, i.e. ``(0 - mean_c) / std_c`` per channel when
    ``normalization`` is given, so the pipeline matches padding raw images and normalizing afterwards.
    All random numbers come from ``generator`` (on its own device, then moved to ``x``'s), so training
    is reproducible; ``x`` is not modified.
    """
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")

    def augment(x: Tensor, generator: torch.Generator) -> Tensor:
        if x.dim() != 4:
            raise ValueError(f"crop_flip expects (N, C, H, W) batches, got shape {tuple(x.shape)}")
        n, c, h, w = x.shape
        offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator, device=generator.device)
        flips = torch.randint(0, 2, (n,), generator=generator, device=generator.device).bool()
        offsets, flips = offsets.to(x.device), flips.to(x.device)
        if normalization is None:
            fill = torch.zeros(c, dtype=x.dtype, device=x.device)
        else:
            mean = torch.tensor(normalization.mean, dtype=torch.float64)
            std = torch.tensor(normalization.std, dtype=torch.float64)
            fill = (-mean / std).to(dtype=x.dtype, device=x.device).expand(c)
        padded = fill.reshape(1, c, 1, 1).expand(n, c, h + 2 * pad, w + 2 * pad).clone()
        padded[:, :, pad : pad + h, pad : pad + w] = x
        rows = offsets[:, 0, None] + torch.arange(h, device=x.device)  # (n, h)
        cols = offsets[:, 1, None] + torch.arange(w, device=x.device)  # (n, w)
        cols = torch.where(flips[:, None], cols.flip(1), cols)
        batch = torch.arange(n, device=x.device)[:, None, None]
        # advanced indices on dims 0, 2, 3 around a slice: the result is (n, h, w, c)
        out = padded[batch, :, rows[:, :, None], cols[:, None, :]]
        return out.permute(0, 3, 1, 2).contiguous()

    return augment
