#!/usr/bin/env python
"""Per-sample cost of a wide ResNet's forward pass, gradient and Hessian-vector product, and its FLOPs,
for the cost model of docs/distributed.md.

For WRN-depth-w at a few small widths on CIFAR-shaped inputs (3x32x32, random pixels, batch-norm in eval
mode with running statistics from a few passes), times per sample on this CPU: forward, gradient (forward +
backward), HVP on a kept gradient graph (a Hessian set of one batch) and HVP rebuilding the graph (the
cost per product when the Hessian set spans several batches). FLOPs are counted exactly for convolutions
and the linear layer (2 per multiply-add; batch norm, ReLU and pooling left out, a few percent). The
script then scales the measured seconds per FLOP of the widest width measured to the target (default
WRN-20-10): wider convolutions run at least as efficiently, so the scaled figure is an upper bound for
this CPU.

usage: python scripts/bench_wrn_cost.py [--depth 20] [--widths 1 2] [--target-width 10] [--batch 32]
       [--threads 1] [--dtype float32] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from torch import nn

from hessdyn.curvature import HessianOperator
from hessdyn.curvature.risk import EmpiricalRisk
from hessdyn.models import WideResNet

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def forward_flops(model: nn.Module, shape: tuple[int, ...]) -> int:
    """FLOPs (2 per multiply-add) of one sample's forward pass through the convolutions and linear layers."""
    total = 0

    def conv_hook(m: nn.Conv2d, _inp, out: torch.Tensor) -> None:
        nonlocal total
        k = m.kernel_size[0] * m.kernel_size[1]
        total += 2 * (m.in_channels // m.groups) * m.out_channels * k * out.shape[2] * out.shape[3]

    def linear_hook(m: nn.Linear, _inp, _out) -> None:
        nonlocal total
        total += 2 * m.in_features * m.out_features

    handles = [
        m.register_forward_hook(conv_hook if isinstance(m, nn.Conv2d) else linear_hook)
        for m in model.modules()
        if isinstance(m, nn.Conv2d | nn.Linear)
    ]
    with torch.no_grad():
        model.eval()(torch.zeros(1, *shape))
    for h in handles:
        h.remove()
    return total


def activation_floats(model: nn.Module, shape: tuple[int, ...]) -> int:
    """Numbers one sample's forward pass produces in leaf modules: a proxy for what the gradient graph
    keeps (an HVP by double backward keeps this graph and its backward, a few times as much)."""
    total = 0

    def hook(_m: nn.Module, _inp, out: torch.Tensor) -> None:
        nonlocal total
        total += out.numel()

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    with torch.no_grad():
        model.eval()(torch.zeros(1, *shape))
    for h in handles:
        h.remove()
    return total


def best_of(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(depth: int, width: int, batch: int, dtype: torch.dtype, repeats: int) -> dict[str, float]:
    torch.manual_seed(0)
    model = WideResNet(depth, width, 10)
    x = torch.randn(batch, 3, 32, 32)
    y = torch.randint(0, 10, (batch,))
    with torch.no_grad():
        model(x)  # running statistics off their defaults
    flops = forward_flops(model, (3, 32, 32))
    risk = EmpiricalRisk(model, x, y, dtype=dtype)
    kept = HessianOperator(risk)  # one batch: the gradient graph is built once and kept
    rebuilt = HessianOperator(risk, cache_graph=False)
    v = torch.randn(kept.size, 1, dtype=torch.float64)
    xd = x.to(dtype)

    def forward() -> None:
        with torch.no_grad():
            risk.outputs(risk.params, xd)

    t = {
        "forward": best_of(forward, repeats),
        "gradient": best_of(risk.loss_and_gradient, repeats),
        "hvp_kept": best_of(lambda: kept.matmat(v), repeats),
        "hvp_rebuilt": best_of(lambda: rebuilt.matmat(v), repeats),
    }
    out = {k: s / batch for k, s in t.items()}
    out.update(P=kept.size, gflops=flops / 1e9)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--depth", type=int, default=20)
    p.add_argument("--widths", type=int, nargs="+", default=[1, 2])
    p.add_argument("--target-width", type=int, default=10)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--dtype", choices=list(DTYPES), default="float32")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    dtype = DTYPES[args.dtype]
    print(
        f"bench_wrn_cost: WRN-{args.depth}-w, CIFAR-shaped input, batch {args.batch}, {args.dtype}, "
        f"{args.threads} thread(s), load average {os.getloadavg()[0]:.1f}"
    )
    print("width  P          fwd_GFLOP  fwd_ms  grad_ms  hvp_kept_ms  hvp_rebuilt_ms  (per sample)  GFLOP/s")
    rows = {}
    for w in args.widths:
        r = measure(args.depth, w, args.batch, dtype, args.repeats)
        rows[w] = r
        rate = r["gflops"] / r["forward"]
        print(
            f"{w:5d}  {r['P']:9,d}  {r['gflops']:9.3f}  {1e3 * r['forward']:6.2f}  {1e3 * r['gradient']:7.2f}  "
            f"{1e3 * r['hvp_kept']:11.2f}  {1e3 * r['hvp_rebuilt']:14.2f}                {rate:7.2f}"
        )
    w = max(rows)
    target = WideResNet(args.depth, args.target_width, 10)
    t_flops = forward_flops(target, (3, 32, 32)) / 1e9
    t_params = sum(q.numel() for q in target.parameters())
    t_acts = activation_floats(target, (3, 32, 32))
    scale = t_flops / rows[w]["gflops"]
    print(
        f"\nWRN-{args.depth}-{args.target_width}: P = {t_params:,}, {t_flops:.2f} GFLOP per forward sample, "
        f"{scale:.1f}x WRN-{args.depth}-{w}; scaled per-sample seconds on this CPU ({args.threads} thread(s)):"
    )
    for key in ("forward", "gradient", "hvp_kept", "hvp_rebuilt"):
        print(
            f"  {key:12s} {rows[w][key] * scale:.3f} s   ({rows[w][key] / rows[w]['forward']:.2f}x forward)"
        )
    print(
        f"forward activations (leaf-module outputs) per sample: {t_acts / 1e6:.2f}M numbers "
        f"({4 * t_acts / 2**20:.0f} MiB in float32)"
    )


if __name__ == "__main__":
    main()
