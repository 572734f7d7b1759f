#!/usr/bin/env python
"""Write a small CIFAR-10-format dataset (real release layout, made-up images) for smoke runs offline.

ROOT/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}: python pickles with b"data" uint8
(N, 3072) in CHW order and b"labels", exactly as the release, so hessdyn's CIFAR loader reads it like the
real thing. Images are class-dependent colour blobs plus noise, so a small net can actually learn them.
No CIFAR copy exists on this machine; this is how wrn_smoke and the tests exercise the CIFAR path.

usage: python scripts/make_cifar_like.py ROOT [--train 500] [--test 200] [--seed 0]
"""

from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path

import numpy as np


def make_images(n: int, rng: np.random.Generator) -> tuple[np.ndarray, list[int]]:
    labels = rng.integers(0, 10, n)
    colours = np.linspace(0, 255, 10)
    yy, xx = np.mgrid[0:32, 0:32]
    images = np.empty((n, 3, 32, 32), dtype=np.float64)
    for i, c in enumerate(labels):
        cy, cx = 8 + 16 * (c % 2), 8 + 3 * (c % 6)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 40.0)
        for ch in range(3):
            images[i, ch] = 60 + colours[(c + 3 * ch) % 10] * 0.6 * blob
    images += rng.normal(0, 25, images.shape)
    return np.clip(images, 0, 255).astype(np.uint8).reshape(n, 3072), [int(v) for v in labels]


def write(root: Path, n_train: int, n_test: int, seed: int) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    per_batch = [n_train // 5 + (1 if i < n_train % 5 else 0) for i in range(5)]
    for i, n in enumerate(per_batch, start=1):
        data, labels = make_images(n, rng)
        record = {
            b"batch_label": f"training batch {i} of 5".encode(),
            b"labels": labels,
            b"data": data,
            b"filenames": [f"img{i}_{j}.png".encode() for j in range(n)],
        }
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(record, protocol=2))
    data, labels = make_images(n_test, rng)
    record = {
        b"batch_label": b"testing batch 1 of 1",
        b"labels": labels,
        b"data": data,
        b"filenames": [f"test{j}.png".encode() for j in range(n_test)],
    }
    (folder / "test_batch").write_bytes(pickle.dumps(record, protocol=2))
    names = [
        b"airplane",
        b"automobile",
        b"bird",
        b"cat",
        b"deer",
        b"dog",
        b"frog",
        b"horse",
        b"ship",
        b"truck",
    ]
    meta = {b"num_cases_per_batch": per_batch[0], b"label_names": names, b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return folder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--train", type=int, default=500)
    parser.add_argument("--test", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    folder = write(args.root, args.train, args.test, args.seed)
    print(f"wrote {args.train} training and {args.test} test images in CIFAR-10 format to {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
