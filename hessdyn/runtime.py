"""Device and dtype selection shared by every stage."""

from __future__ import annotations

import os

import torch

from hessdyn.config.errors import HessdynError

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def resolve_device(name: str) -> torch.device:
    name = getattr(name, "value", name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise HessdynError("device=cuda but no CUDA device is available; use device=cpu or device=auto")
    return torch.device(name)


def resolve_dtype(name: str) -> torch.dtype:
    return DTYPES[getattr(name, "value", name)]


def set_determinism(enabled: bool, device: torch.device) -> None:
    """Deterministic kernels (bit-identical reruns on the CPU; best effort on CUDA)."""
    if device.type == "cuda":
        # cuBLAS needs a fixed workspace to be deterministic; must be set before the first cuBLAS call.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = not enabled
    torch.use_deterministic_algorithms(enabled, warn_only=True)
