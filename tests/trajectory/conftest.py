"""Shared helpers for trajectory tests: random orthonormal blocks in float64."""

from __future__ import annotations

import math

import pytest
import torch


def orthonormal_rows(k: int, size: int, seed: int) -> torch.Tensor:
    """A ``(k, size)`` block with orthonormal rows, from the QR of a seeded Gaussian matrix."""
    generator = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(size, k, generator=generator, dtype=torch.float64))
    return q.T.contiguous()


def rotate_pair(block: torch.Tensor, i: int, j: int, angle: float) -> torch.Tensor:
    """Rotate rows i and j of a block by ``angle`` inside their plane (a copy)."""
    rotated = block.clone()
    c, s = math.cos(angle), math.sin(angle)
    rotated[i] = c * block[i] + s * block[j]
    rotated[j] = -s * block[i] + c * block[j]
    return rotated


@pytest.fixture
def block() -> torch.Tensor:
    return orthonormal_rows(5, 40, seed=0)


@pytest.fixture(name="orthonormal_rows")
def orthonormal_rows_fixture():
    return orthonormal_rows


@pytest.fixture(name="rotate_pair")
def rotate_pair_fixture():
    return rotate_pair
