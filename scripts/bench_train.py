#!/usr/bin/env python
"""Time per epoch of hessdyn's training loop against a bare hand-written PyTorch loop.

Same MLP (784-512-512-10, ReLU), same MNIST-sized data held as tensors on the device, same batch size
(128), plain SGD. Runs alternate (hessdyn, bare, hessdyn, bare, ...) so both see the same machine load,
and the printed ratio is the median of the per-pair ratios. hessdyn's time per epoch is measured from
its own metrics table (wall clock between the first and last logged steps), i.e. the steady-state loop
with its default logging (every 10 steps: grad/update/param norms) — the one-off evaluations and
checkpoint writes at step 0 and at the end are reported separately as "end to end".

usage: python scripts/bench_train.py [--data-root DIR] [--epochs 1] [--repeats 3] [--device cpu]
Targets (issue 16): steady ratio <= 1.05, end to end <= 1.25 (median of 5 repeats).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from hessdyn.config import schema as s
from hessdyn.data import DatasetSplits, TensorSplit, load_dataset
from hessdyn.models import build_model
from hessdyn.store import RunDir
from hessdyn.training.loop import train

REPO = Path(__file__).resolve().parents[1]


def mnist_sized(device: torch.device, data_root: Path | None) -> tuple[DatasetSplits, str]:
    if data_root is not None:
        cfg = s.MNISTConfig(root=str(data_root))
        return load_dataset(cfg, device, torch.float32), f"real MNIST from {data_root}"
    g = torch.Generator().manual_seed(0)
    x = torch.randn(60000, 1, 28, 28, generator=g).to(device)
    y = torch.randint(0, 10, (60000,), generator=g).to(device)
    xt = torch.randn(10000, 1, 28, 28, generator=g).to(device)
    yt = torch.randint(0, 10, (10000,), generator=g).to(device)
    splits = DatasetSplits(
        name="mnist_sized_random",
        train=TensorSplit(x, y),
        test=TensorSplit(xt, yt),
        input_shape=(1, 28, 28),
        num_classes=10,
        augment=None,
        info={"source": "random tensors of MNIST's shape"},
    )
    return splits, "random tensors shaped like MNIST (60,000 x 1 x 28 x 28)"


def hessdyn_config(epochs: float, device: str) -> s.TrainConfig:
    return s.TrainConfig(
        model=s.MLPConfig(widths=[512, 512]),
        dataset=s.MNISTConfig(),
        optimizer=s.SGDConfig(lr=0.05),
        schedule=s.ConstantScheduleConfig(),
        regularizer=s.NoRegularizerConfig(),
        trainer=s.TrainerConfig(
            max_steps=None, epochs=epochs, batch_size=128, eval_every=10**9, progress=False
        ),
        checkpoint=s.CheckpointConfig(schedule=s.CheckpointSchedule.list, steps=[0]),
        device=s.Device(device),
    )


def time_hessdyn(data: DatasetSplits, epochs: float, device: str) -> tuple[float, float]:
    """(seconds per epoch in the steady loop, end-to-end seconds per epoch)."""
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = train(hessdyn_config(epochs, device), Path(tmp) / "run", data=data)
        end_to_end = time.perf_counter() - t0
        table = pd.read_csv(RunDir(Path(tmp) / "run").train_csv)
    batch = table[table.source == "batch"].sort_values("step")
    first, last = batch.iloc[0], batch.iloc[-1]
    steps_per_epoch = result.total_steps / epochs
    per_step = (last.wall_s - first.wall_s) / (last.step - first.step)
    return per_step * steps_per_epoch, end_to_end / epochs


def time_bare(data: DatasetSplits, epochs: float, device: torch.device) -> float:
    """The loop a researcher writes by hand: permute, slice, forward, backward, step."""
    torch.manual_seed(0)
    model = build_model(s.MLPConfig(widths=[512, 512]), data.input_shape, data.num_classes).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = data.train.x, data.train.y
    n, bs = len(y), 128
    steps = int(round(epochs * ((n + bs - 1) // bs)))
    g = torch.Generator().manual_seed(1)
    done, marks = 0, []
    while done < steps:
        perm = torch.randperm(n, generator=g).to(device)
        for i in range(0, n, bs):
            if done == steps:
                break
            idx = perm[i : i + bs]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done += 1
            if done in (10, steps):  # same window as hessdyn's first..last logged rows
                if device.type == "cuda":
                    torch.cuda.synchronize()
                marks.append(time.perf_counter())
    return (marks[-1] - marks[0]) / (steps - 10) * (steps / epochs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shared = os.environ.get("HESSDYN_SHARED_DATA")
    default_root = Path(shared) if shared else REPO.parent / "shared" / "data"
    parser.add_argument(
        "--data-root", type=Path, default=default_root if (default_root / "MNIST").is_dir() else None
    )
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    data, source = mnist_sized(device, args.data_root)
    print(
        f"data: {source}; MLP 784-512-512-10, batch 128, SGD; device {device}, {torch.get_num_threads()} threads"
    )
    print(
        f"{'repeat':>6} {'hessdyn s/epoch':>16} {'bare s/epoch':>13} {'ratio':>7} {'hessdyn end-to-end':>19}"
    )
    ratios, e2e_ratios = [], []
    time_bare(data, 0.1, device)  # warm up allocator and kernels once
    for r in range(args.repeats):
        h, h_e2e = time_hessdyn(data, args.epochs, args.device)
        b = time_bare(data, args.epochs, device)
        ratios.append(h / b)
        e2e_ratios.append(h_e2e / b)
        print(f"{r:>6} {h:>16.3f} {b:>13.3f} {h / b:>7.3f} {h_e2e:>19.3f}")
    print(f"median ratio hessdyn/bare (steady loop): {statistics.median(ratios):.3f}   target <= 1.05")
    print(
        f"median ratio end to end (incl. step-0/final eval and checkpoints): {statistics.median(e2e_ratios):.3f}"
        "   target <= 1.25"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
