"""CIFAR augmentation: random crop with 4-pixel padding + horizontal flip, seeded, on tensors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hessdyn.config import schema as s
from hessdyn.data import load_dataset
from hessdyn.data.augment import crop_flip
from hessdyn.data.splits import Normalization


def _candidates(image: torch.Tensor, pad: int, fill: torch.Tensor) -> list[torch.Tensor]:
    c, h, w = image.shape
    padded = fill.reshape(c, 1, 1).expand(c, h + 2 * pad, w + 2 * pad).clone()
    padded[:, pad : pad + h, pad : pad + w] = image
    out = []
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            crop = padded[:, dy : dy + h, dx : dx + w]
            out += [crop, crop.flip(-1)]
    return out


def test_each_output_is_a_padded_crop_or_its_mirror() -> None:
    torch.manual_seed(0)
    x = torch.randn(16, 3, 10, 12)
    out = crop_flip(4)(x, torch.Generator().manual_seed(1))
    assert out.shape == x.shape
    for i in range(len(x)):
        assert any(torch.equal(out[i], cand) for cand in _candidates(x[i], 4, torch.zeros(3)))


def test_padding_is_a_black_pixel_before_normalization() -> None:
    norm = Normalization(mean=(0.5, 0.25, 0.125), std=(0.5, 0.25, 0.5))
    x = torch.full((64, 3, 8, 8), 7.0)
    out = crop_flip(4, norm)(x, torch.Generator().manual_seed(0))
    fill = torch.tensor([-1.0, -1.0, -0.25])
    border = out != 7.0
    assert border.any()  # some crops reach into the padding
    for c in range(3):
        assert torch.all(out[:, c][border[:, c]] == fill[c])


def test_seeded_deterministic_and_varied() -> None:
    x = torch.randn(32, 3, 32, 32)
    aug = crop_flip(4)
    a = aug(x, torch.Generator().manual_seed(5))
    b = aug(x, torch.Generator().manual_seed(5))
    c = aug(x, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_offsets_and_flips_are_uniform() -> None:
    # channel 0 is a ramp along the width, channel 1 along the height: the centre pixel and the slope
    # there reveal each image's offsets (dy, dx) in 0..8 and its flip
    n, size = 9000, 32
    ramp = torch.arange(size, dtype=torch.float32)
    x = torch.stack([ramp.expand(size, size), ramp[:, None].expand(size, size)]).expand(n, 2, size, size)
    out = crop_flip(4)(x, torch.Generator().manual_seed(0))
    flipped = out[:, 0, 16, 17] < out[:, 0, 16, 16]
    dx = torch.where(flipped, out[:, 0, 16, 16] - 11, out[:, 0, 16, 16] - 12).long()  # col c shows c + dx - 4
    dy = (out[:, 1, 16, 16] - 12).long()
    assert abs(flipped.float().mean().item() - 0.5) < 0.03
    for offsets in (dx, dy):
        counts = torch.bincount(offsets, minlength=9)
        assert counts.numel() == 9 and offsets.min() == 0
        assert (counts.float() / n - 1 / 9).abs().max() < 0.02
    # and the random numbers are independent: the joint (dy, dx) cells are all populated
    assert torch.unique(dy * 9 + dx).numel() == 81


def test_input_batch_is_not_modified() -> None:
    x = torch.randn(4, 3, 8, 8)
    copy = x.clone()
    crop_flip(4)(x, torch.Generator().manual_seed(0))
    assert torch.equal(x, copy)


def test_zero_padding_means_flip_only() -> None:
    x = torch.randn(50, 3, 5, 5)
    out = crop_flip(0)(x, torch.Generator().manual_seed(0))
    same = (out == x).flatten(1).all(1)
    mirrored = (out == x.flip(-1)).flatten(1).all(1)
    assert torch.all(same | mirrored) and same.any() and mirrored.any()


def test_non_image_batches_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"expects \(N, C, H, W\)"):
        crop_flip(4)(torch.randn(3, 20), torch.Generator())


def test_cifar_config_augment_wires_normalized_padding(tmp_path: Path, cifar_writer) -> None:
    cifar_writer(tmp_path / "cifar-10-batches-py")
    data = load_dataset(s.CIFAR10Config(root=str(tmp_path), augment=True), torch.device("cpu"), torch.float32)
    assert data.augment is not None and data.info["augment"] is True
    norm = data.info["normalization"]
    fill = [-m / sd for m, sd in zip(norm["mean"], norm["std"], strict=True)]
    out = data.augment(data.train.x, torch.Generator().manual_seed(0))
    assert out.shape == data.train.x.shape and out.dtype == data.train.x.dtype
    # pixel (0, 0) of an image cropped at offset (0, 0) unflipped is padding: find one
    corner = out[:, :, 0, 0]
    hits = torch.isclose(corner, torch.tensor(fill, dtype=corner.dtype).expand_as(corner), atol=1e-6).all(
        dim=1
    )
    assert hits.any()
