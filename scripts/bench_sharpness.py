#!/usr/bin/env python
"""Cost of the training-time sharpness probe (trainer.sharpness): HVPs per probe and probed/unprobed step time.

Same run twice, alternating (probe off, probe on, off, on, ...) so both see the same machine load: MLP
784-512-512-10 (ReLU) on real MNIST (the .gz idx files under --data-root), batch 128, plain
SGD at lr 0.05, float32. The probed run has ``every=1``, ``top_k=1`` and a probe set of 128 examples (the
batch size), tol 1e-3. Time per step is read from each run's own metrics/train.csv (wall clock between the
first and last logged steps: the steady loop, without the step-0 evaluation and the checkpoints), so the
ratio is (training step + probe) / training step. HVPs per probe are read from metrics/sharpness.csv, over
the probes after the first 10 (the warm start has converged onto the top eigenvector by then).

usage: python scripts/bench_sharpness.py [--data-root DIR] [--steps 300] [--repeats 3] [--device cpu]
Targets (issue 13): mean HVPs per probe after the first 10 <= 6; probed step <= 5x an unprobed step.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from hessdyn.config import schema as s
from hessdyn.data import DatasetSplits, load_dataset
from hessdyn.store import RunDir
from hessdyn.training.loop import train

REPO = Path(__file__).resolve().parents[1]
PROBE_SET = 128


@dataclass(frozen=True)
class Timing:
    """seconds per step of the steady loop; mean HVPs per probe after the first 10 (NaN without a probe)."""

    per_step: float
    hvps: float
    max_hvps: int


def config(steps: int, device: str, probe: bool) -> s.TrainConfig:
    sharpness = s.SharpnessConfig(every=1, top_k=1, set=PROBE_SET, tol=1e-3) if probe else s.SharpnessConfig()
    return s.TrainConfig(
        model=s.MLPConfig(widths=[512, 512]),
        dataset=s.MNISTConfig(),
        optimizer=s.SGDConfig(lr=0.05),
        schedule=s.ConstantScheduleConfig(),
        trainer=s.TrainerConfig(
            max_steps=steps, batch_size=128, eval_every=10**9, progress=False, sharpness=sharpness
        ),
        checkpoint=s.CheckpointConfig(schedule=s.CheckpointSchedule.list, steps=[0]),
        device=s.Device(device),
    )


def time_run(data: DatasetSplits, steps: int, device: str, probe: bool) -> Timing:
    with tempfile.TemporaryDirectory() as tmp:
        run = RunDir(Path(tmp) / "run")
        train(config(steps, device, probe), run.path, data=data)
        table = pd.read_csv(run.train_csv)
        probes = pd.read_csv(run.sharpness_csv) if probe else None
    batch = table[table.source == "batch"].sort_values("step")
    first, last = batch.iloc[0], batch.iloc[-1]
    per_step = (last.wall_s - first.wall_s) / (last.step - first.step)
    if probes is None:
        return Timing(per_step, float("nan"), 0)
    later = probes[(probes.operator == "hessian") & (probes.step >= 10)]
    return Timing(per_step, float(later.hvps.mean()), int(later.hvps.max()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset(s.MNISTConfig(root=str(args.data_root)), torch.device(args.device), torch.float32)
    print(
        f"data: real MNIST from {args.data_root}; MLP 784-512-512-10, batch 128, SGD lr 0.05, {args.steps} steps; probe every=1, "
        f"top_k=1, set={PROBE_SET}, tol=1e-3; device {args.device}, {torch.get_num_threads()} threads"
    )
    print(f"{'repeat':>6} {'off s/step':>11} {'on s/step':>10} {'ratio':>7} {'HVPs/probe':>11} {'max':>5}")
    ratios, hvps = [], []
    time_run(data, 20, args.device, probe=True)  # warm up allocator and kernels once
    for r in range(args.repeats):
        off = time_run(data, args.steps, args.device, probe=False)
        on = time_run(data, args.steps, args.device, probe=True)
        ratios.append(on.per_step / off.per_step)
        hvps.append(on.hvps)
        print(
            f"{r:>6} {off.per_step:>11.5f} {on.per_step:>10.5f} {ratios[-1]:>7.2f} {on.hvps:>11.2f} "
            f"{on.max_hvps:>5d}"
        )
    print(f"median ratio probed/unprobed step: {statistics.median(ratios):.2f}   target <= 5")
    print(f"mean HVPs per probe after the first 10: {statistics.mean(hvps):.2f}   target <= 6")
    return 0


if __name__ == "__main__":
    sys.exit(main())
