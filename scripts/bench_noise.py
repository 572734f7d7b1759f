#!/usr/bin/env python
"""Gradient-moment products against Hessian products over the same examples, side by side in one run.

Setup (issue 12): MNIST MLP 784-64-64-10 (ReLU, hessdyn's MLP), trained for one epoch of SGD (lr 0.05, batch
64, seed 0) on 2,000 real MNIST training images (stratified subset, seed 0, normalized), which are also the
examples every operator runs over. Target: one product of M costs at most 1.5 products of H.

Part 1, time: for float64 and float32, every operator's single-vector product is timed `--repeats` times in
interleaved rounds (one round = every operator once, in a rotated order); the fastest and median wall
times and the fastest CPU time (this process, all threads) are printed with their ratios to the Hessian's
kept-graph product (the one the analysis uses for a one-batch Hessian set). Operators: H (double backward, kept graph), H (forward over reverse), M and C
(double-vjp, kept graph), M (forward-mode jvp, kept linearization), M (vmap per-example gradients), one
gradient; then the same set cut into 4 batches (nothing kept): H against M and C; last, in fewer rounds, the
per-example-gradient paths: M by vmap and the exact diag(M), diag(C) pass, in units of one H product.

Part 2, memory: in a fresh subprocess per setting, the peak RSS during one product (the kernel's VmHWM,
reset just before it after returning freed heap to the OS) minus the RSS before it, against the chunk size
(examples at once), float64: M by double-vjp, M by per-example gradients, the exact diagonal pass, and H
with the same batch size for reference. tracemalloc does not see torch's tensor memory, so peak RSS is the
measure (Linux only). The load average is printed so a reader can judge the conditions.

usage: python scripts/bench_noise.py [--data-root DIR] [--n 2000] [--threads 2] [--repeats 15] [--quick]
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from hessdyn.config.schema import MNISTConfig
from hessdyn.curvature import (
    CovarianceOperator,
    CurvatureOperator,
    EmpiricalRisk,
    HessianOperator,
    SecondMomentOperator,
    gradient_moment_diagonals,
)
from hessdyn.data import load_dataset
from hessdyn.models.mlp import MLP

REPO = Path(__file__).resolve().parents[1]
CHUNKS = (50, 200, 500, 2000)


def default_data_root() -> Path:
    """$HESSDYN_SHARED_DATA, else a shared/data folder beside the checkout or beside its parent."""
    candidates = [
        os.environ.get("HESSDYN_SHARED_DATA"),
        REPO.parent / "shared" / "data",
        REPO.parents[1] / "shared" / "data",
    ]
    for candidate in candidates:
        if candidate and Path(candidate, "MNIST", "raw").is_dir():
            return Path(candidate)
    sys.exit(
        "bench_noise: no MNIST copy found ($HESSDYN_SHARED_DATA or ../shared/data); pass --data-root DIR"
    )


def load_examples(root: Path, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    cfg = MNISTConfig(root=str(root), n_train=n, n_test=100)
    splits = load_dataset(cfg, torch.device("cpu"), torch.float32)
    return splits.train.x, splits.train.y


def trained_mlp(x: torch.Tensor, y: torch.Tensor) -> nn.Module:
    """784-64-64-10 after one epoch of SGD over the examples (a checkpoint past initialization)."""
    torch.manual_seed(0)
    model = MLP((1, 28, 28), [64, 64], 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    for i in range(0, len(x), 64):
        idx = order[i : i + 64]
        opt.zero_grad()
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    return model


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


@dataclass
class Timings:
    """Seconds per call: wall clock and CPU time of this process (all its threads)."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)


def timed_rounds(calls: dict[str, Callable[[], object]], repeats: int) -> dict[str, Timings]:
    """Every call once per round, order rotated each round, after one warm-up call each."""
    for call in calls.values():
        call()
    names = list(calls)
    times = {name: Timings() for name in names}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            wall, cpu = time.perf_counter(), time.process_time()
            calls[name]()
            times[name].cpu.append(time.process_time() - cpu)
            times[name].wall.append(time.perf_counter() - wall)
    return times


def product(op: CurvatureOperator, gen: torch.Generator) -> Callable[[], object]:
    return lambda: op.matvec(torch.randn(op.size, generator=gen, dtype=torch.float64))


def print_table(title: str, times: dict[str, Timings], reference: str) -> None:
    """Fastest and median wall time, fastest CPU time, and both ratios to the reference operator. On a shared
    machine the CPU-time ratio is the steadier one: other processes stretch wall time, not this one's work."""
    ref_wall, ref_cpu = min(times[reference].wall), min(times[reference].cpu)
    print(f"\n{title}  ({load_average()})")
    print(f"  reference: {reference}")
    print(
        f"  {'operator':<44} {'min ms':>8} {'median ms':>10} {'min cpu ms':>11} {'wall ratio':>11} {'cpu ratio':>10}"
    )
    for name, t in times.items():
        print(
            f"  {name:<44} {1e3 * min(t.wall):8.1f} {1e3 * statistics.median(t.wall):10.1f} "
            f"{1e3 * min(t.cpu):11.1f} {min(t.wall) / ref_wall:11.2f} {min(t.cpu) / ref_cpu:10.2f}"
        )


def time_products(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, dtype: torch.dtype, repeats: int
) -> None:
    gen = torch.Generator().manual_seed(0)
    risk = EmpiricalRisk(model, x, y, dtype=dtype)
    reference = "H  double backward, kept graph"
    name = str(dtype).replace("torch.", "")
    calls = {
        reference: product(HessianOperator(risk), gen),
        "H  forward over reverse": product(HessianOperator(risk, backend="forward_over_reverse"), gen),
        "M  double-vjp, kept graph (auto)": product(SecondMomentOperator(risk), gen),
        "C  double-vjp, kept graph (auto)": product(CovarianceOperator(risk), gen),
        "M  forward-mode jvp, kept linearization": product(SecondMomentOperator(risk, backend="jvp"), gen),
        "one gradient of the mean loss": lambda: risk.loss_and_gradient(),
    }
    times = timed_rounds(calls, repeats)
    print_table(f"{name}: one product over N = {len(x)} examples, one batch", times, reference)

    batched = EmpiricalRisk(model, x, y, dtype=dtype, batch_size=len(x) // 4)
    batched_reference = "H  4 batches (double backward)"
    calls = {
        batched_reference: product(HessianOperator(batched), gen),
        "M  4 chunks (double-vjp)": product(SecondMomentOperator(batched), gen),
        "C  4 chunks (double-vjp)": product(CovarianceOperator(batched), gen),
        "M  4 chunks (forward-mode jvp)": product(SecondMomentOperator(batched, backend="jvp"), gen),
    }
    times = timed_rounds(calls, repeats)
    print_table(f"{name}: the same set in 4 batches, nothing kept between products", times, batched_reference)

    # the per-example-gradient paths cost seconds each: fewer rounds
    calls = {
        reference: product(HessianOperator(risk), gen),
        "M  vmap per-example gradients, chunk 500": product(
            SecondMomentOperator(risk, backend="per_sample", chunk_size=500), gen
        ),
        "exact diag(M), diag(C), tr(M), tr(C): one pass": lambda: gradient_moment_diagonals(risk),
    }
    times = timed_rounds(calls, max(3, repeats // 4))
    print_table(f"{name}: the per-example-gradient paths", times, reference)


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def reset_peak_rss() -> int:
    """Return freed heap to the OS, reset the kernel's peak-RSS mark (Linux >= 4.0) and return RSS in KiB."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")
    return _status_kib("VmRSS")


def measure_memory(kind: str, chunk: int, n: int, root: Path) -> dict[str, float]:
    """One setting in this process: RSS before, and the peak RSS (VmHWM) during one product or one pass."""
    torch.set_num_threads(1)
    x, y = load_examples(root, n)
    model = trained_mlp(x, y)
    batch = chunk if kind == "H" else None
    risk = EmpiricalRisk(model, x, y, dtype=torch.float64, batch_size=batch)
    v = torch.randn(risk.size, dtype=torch.float64)
    before = reset_peak_rss()
    if kind == "H":
        HessianOperator(risk, cache_graph=False).matvec(v)
    elif kind == "M double-vjp":
        SecondMomentOperator(risk, chunk_size=chunk, cache_graph=False).matvec(v)
    elif kind == "M per-example":
        SecondMomentOperator(risk, backend="per_sample", chunk_size=chunk).matvec(v)
    elif kind == "exact diagonals":
        gradient_moment_diagonals(risk, chunk_size=chunk)
    after = _status_kib("VmHWM")
    return {"before_mib": before / 1024, "peak_mib": after / 1024, "P": risk.size}


def memory_table(n: int, root: Path, chunks: tuple[int, ...]) -> None:
    print(
        f"\nfloat64 peak RSS growth during one product / pass, MiB, by chunk size (examples at once)  ({load_average()})"
    )
    kinds = ("H", "M double-vjp", "M per-example", "exact diagonals")
    print(f"  {'chunk':>6} " + " ".join(f"{k:>16}" for k in kinds) + f" {'chunk x P x 8 B':>16}")
    for chunk in chunks:
        row = []
        size = 0
        for kind in kinds:
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--memory-probe",
                    kind,
                    str(chunk),
                    "--n",
                    str(n),
                    "--data-root",
                    str(root),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            result = json.loads(out.stdout.strip().splitlines()[-1])
            size = int(result["P"])
            row.append(result["peak_mib"] - result["before_mib"])
        print(f"  {chunk:>6} " + " ".join(f"{r:16.1f}" for r in row) + f" {chunk * size * 8 / 2**20:16.1f}")
    print("  (H rows: the Hessian with batch_size = chunk, for reference)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="float64 only, chunks 200 and 2000")
    parser.add_argument("--memory-probe", nargs=2, metavar=("KIND", "CHUNK"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.data_root is None:
        args.data_root = default_data_root()
    if args.memory_probe:
        kind, chunk = args.memory_probe
        print(json.dumps(measure_memory(kind, int(chunk), args.n, args.data_root)))
        return
    torch.set_num_threads(args.threads)
    x, y = load_examples(args.data_root, args.n)
    model = trained_mlp(x, y)
    P = sum(p.numel() for p in model.parameters())
    print(
        f"bench_noise: MNIST MLP 784-64-64-10, P = {P}, N = {len(x)} real MNIST images, {args.threads} threads, torch {torch.__version__}"
    )
    for dtype in (torch.float64,) if args.quick else (torch.float64, torch.float32):
        time_products(model, x, y, dtype, args.repeats)
    memory_table(args.n, args.data_root, (200, 2000) if args.quick else CHUNKS)


if __name__ == "__main__":
    main()
