"""scikit-learn's real 8x8 handwritten digits (1,797 images, bundled with scikit-learn: no files, no network)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.datasets import load_digits as sklearn_load_digits
from sklearn.model_selection import train_test_split

from hessdyn.data.splits import DatasetSplits, finalize


def load_digits(cfg: Any, device: torch.device, dtype: torch.dtype) -> DatasetSplits:
    """Stratified train/test split (``cfg.test_fraction``, seeded by ``cfg.split_seed``) of the digits,
    images ``(N, 1, 8, 8)`` with pixel values divided by 16 (the data's 0..16 range) before normalization.

    With the defaults (test_fraction 0.25) the split is 1,347 train / 450 test images; the split depends
    only on ``split_seed``, never on the training seed.
    """
    bunch = sklearn_load_digits()
    images = np.asarray(bunch.data, dtype=np.float64).reshape(-1, 1, 8, 8)
    labels = np.asarray(bunch.target, dtype=np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        images, labels, test_size=float(cfg.test_fraction), random_state=int(cfg.split_seed), stratify=labels
    )
    info = {
        "source": "sklearn.datasets.load_digits (bundled)",
        "test_fraction": float(cfg.test_fraction),
        "split_seed": int(cfg.split_seed),
    }
    return finalize(
        "digits",
        (torch.from_numpy(x_tr), torch.from_numpy(y_tr)),
        (torch.from_numpy(x_te), torch.from_numpy(y_te)),
        10,
        cfg,
        device,
        dtype,
        info,
        scale=16.0,
    )
