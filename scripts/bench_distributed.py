#!/usr/bin/env python
"""Data-parallel curvature products: one process against two, side by side in one run.

Setup: MNIST MLP 784-128-128-10 (ReLU) after one epoch of SGD (lr 0.1, batch 128, seed 0), the Hessian of
the mean cross-entropy over a seeded 5,000-image subset, float64 products (the analysis default). Each
configuration runs in fresh processes, round robin, `--repeats` times; the fastest round is reported:

  1x1   one process, one thread, the plain operator
  1x2   one process, two threads, the plain operator (what two cores give without distribution)
  2x1   two gloo ranks, one thread each, the distributed operator (shards of 2,500 images)
  1x1d  one rank through the distributed operator (its overhead: input checksum, copy, all_reduce)

Per configuration: seconds per single-vector product (median of --products), the split of a product on
rank 0 into computing its share, the all_reduce (including waiting for the other rank) and the input
check; the all_reduce of a P-vector alone; a top-k solve (k 20, tol 1e-3): seconds and products; memory
per rank: the resident set once torch, hessdyn, the model and the Hessian set are loaded (base), and what
the operator adds after its products (ops) and at the peak of the solve (peak), both over base. The load average is printed with each
run: the machine may be shared, so read the ratios, which are measured side by side.

--model wrn (--depth, --width; default 14-4, which Zagoruyko & Komodakis call WRN-16-4, 2.75M parameters)
times a wide ResNet on CIFAR-10-format data under --data-root (scripts/make_cifar_like.py writes such
data); --synthetic uses random inputs of the right shape instead of data (timing only); --device cuda
times on a GPU (configurations 1x1 and 1x1d: one rank per GPU). --allreduce-numel N also times a gloo all_reduce of N float64 numbers between
two processes (27e6 for a WRN-20-10). Without the data the script says so and exits 0.

usage: python scripts/bench_distributed.py [--data-root DIR | --synthetic] [--n 5000] [--k 20] [--repeats 2]
       [--products 10] [--configs 1x1 1x2 2x1 1x1d] [--model mlp|wrn] [--device cpu|cuda]
       [--dtype float64|float32] [--no-solve] [--json FILE] [--allreduce-numel N]
       [--omp-wait-policy active|passive]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from hessdyn.config.schema import CIFAR10Config, MNISTConfig
from hessdyn.curvature import DistributedOperator, curvature_operator, select_hessian_set
from hessdyn.data import load_dataset
from hessdyn.models import MLP, WideResNet
from hessdyn.parallel import init_distributed, shutdown
from hessdyn.solvers import eigsh_topk

REPO = Path(__file__).resolve().parents[1]
DTYPES = {"float64": torch.float64, "float32": torch.float32}


# ------------------------------------------------------------------------------------------- the setup
def build_model(spec: dict[str, Any]) -> torch.nn.Module:
    if spec["model"] == "mlp":
        return MLP((1, 28, 28), [128, 128], 10, activation="relu")
    return WideResNet(spec["depth"], spec["width"], 10, in_channels=3)


def find_data(args: argparse.Namespace) -> Path | None:
    if args.synthetic:
        return Path(".")
    root = Path(args.data_root)
    if args.model == "mlp":
        return root if (root / "MNIST" / "raw").is_dir() or (root / "raw").is_dir() else None
    return root if (root / "cifar-10-batches-py").is_dir() else None


def prepare(args: argparse.Namespace, folder: Path) -> Path:
    """Train (MLP) or initialize (WRN) the model, pick the Hessian set, save both for the workers."""
    torch.manual_seed(0)
    if args.synthetic:  # timing only: random images of the right shape, random labels
        gen = torch.Generator().manual_seed(0)
        shape = (1, 28, 28) if args.model == "mlp" else (3, 32, 32)
        x, y = torch.randn(args.n, *shape, generator=gen), torch.randint(0, 10, (args.n,), generator=gen)
    elif args.model == "mlp":
        splits = load_dataset(MNISTConfig(root=str(args.data_root)), torch.device("cpu"), torch.float32)
        x, y = splits.train.x, splits.train.y
    else:
        splits = load_dataset(CIFAR10Config(root=str(args.data_root)), torch.device("cpu"), torch.float32)
        x, y = splits.train.x, splits.train.y
    spec = {"model": args.model, "depth": args.depth, "width": args.width}
    model = build_model(spec)
    if args.model == "mlp" and not args.synthetic:  # one epoch of SGD: the structure of a trained net
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        order = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(0))
        for i in range(0, x.shape[0], 128):
            idx = order[i : i + 128]
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    else:  # batch-norm running statistics from a few training-mode passes
        with torch.no_grad():
            for i in range(0, min(x.shape[0], 1024), 256):
                model(x[i : i + 256])
    hset = select_hessian_set(x, y, args.n, seed=0)
    path = folder / "setup.pt"
    torch.save({"spec": spec, "state": model.state_dict(), "x": hset.x, "y": hset.y}, path)
    return path


# --------------------------------------------------------------------------------------------- workers
def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_products(op: Any, count: int, device: torch.device) -> list[float]:
    gen = torch.Generator().manual_seed(1)
    times = []
    for _ in range(count):
        v = torch.randn(op.size, generator=gen, dtype=torch.float64).to(device)
        sync(device)
        start = time.perf_counter()
        op.matvec(v)
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def allreduce_seconds(numel: int, dtype: torch.dtype, device: torch.device, group: Any, count: int) -> float:
    import torch.distributed as dist

    buf = torch.ones(numel, dtype=dtype, device=device)
    dist.all_reduce(buf, group=group)
    times = []
    for _ in range(count):
        sync(device)
        start = time.perf_counter()
        dist.all_reduce(buf, group=group)
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def split(op: Any, before: Any) -> dict[str, float]:
    """Seconds per product of compute / all_reduce / input check since `before` (a ReduceTimings)."""
    after = op.timings()
    calls = max(after.calls - before.calls, 1)
    return {
        "compute_s": (after.compute_s - before.compute_s) / calls,
        "reduce_s": (after.reduce_s - before.reduce_s) / calls,
        "check_s": (after.check_s - before.check_s) / calls,
    }


def worker(spec_path: Path, config: str, opts: dict[str, Any]) -> dict[str, Any]:
    device = torch.device(opts["device"])
    dtype = DTYPES[opts["dtype"]]
    setup = torch.load(spec_path, weights_only=False)
    model = build_model(setup["spec"])
    model.load_state_dict(setup["state"])
    model.to(device)
    from hessdyn.curvature import HessianSet

    hset = HessianSet(setup["x"].to(device), setup["y"].to(device), torch.arange(setup["y"].shape[0]))
    distributed = config in ("2x1", "1x1d")
    ctx = init_distributed(opts["device"], timeout_s=1800) if distributed else None
    base = rss_mb()
    if ctx is not None:
        op = ctx.curvature_operator(model, hset, dtype=dtype, batch_size=opts["batch_size"])
    else:
        op = curvature_operator(model, hset.x, hset.y, dtype=dtype, batch_size=opts["batch_size"])
    timed_products(op, 2, device)  # warm-up: the first products build and keep the gradient graph
    out: dict[str, Any] = {"config": config, "P": op.size, "N": int(hset.y.shape[0])}
    before = op.timings() if isinstance(op, DistributedOperator) else None
    times = timed_products(op, opts["products"], device)
    out.update(product_s=statistics.median(times), product_min_s=min(times), rss_ops_mb=rss_mb() - base)
    if before is not None:
        out.update(split(op, before))
        out["allreduce_s"] = allreduce_seconds(op.size, dtype, device, ctx.group, opts["products"])
    if opts["solve"]:
        before = op.timings() if isinstance(op, DistributedOperator) else None
        res = eigsh_topk(op, opts["k"], tol=1e-3, seed=0)
        sync(device)
        out.update(solve_s=res.wall_seconds, solve_hvps=res.num_hvps, solve_converged=res.all_converged)
        if before is not None:
            out["solve_split"] = split(op, before)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out.update(rss_base_mb=base, rss_peak_mb=max(peak - base, 0.0))
    if device.type == "cuda":
        out["cuda_peak_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    if ctx is not None:
        out["ranks"] = ctx.world_size
        shutdown(ctx)
    return out


def allreduce_worker(numel: int) -> dict[str, Any]:
    ctx = init_distributed("cpu", timeout_s=1800)
    seconds = allreduce_seconds(numel, torch.float64, torch.device("cpu"), ctx.group, 3)
    shutdown(ctx)
    return {"config": "allreduce", "numel": numel, "allreduce_s": seconds, "rss_peak_mb": rss_mb()}


# ---------------------------------------------------------------------------------------------- parent
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_config(config: str, spec_path: Path, opts: dict[str, Any]) -> dict[str, Any]:
    procs_threads = {"1x1": (1, 1), "1x2": (1, 2), "2x1": (2, 1), "1x1d": (1, 1), "allreduce": (2, 1)}
    nproc, threads = procs_threads[config]
    port = str(free_port())
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", config, str(spec_path), json.dumps(opts)]
    procs = []
    for rank in range(nproc):
        env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), BENCH_THREADS=str(threads))
        if opts["omp_wait_policy"]:
            env["OMP_WAIT_POLICY"] = opts["omp_wait_policy"]
        if config in ("2x1", "1x1d", "allreduce"):
            env.update(RANK=str(rank), WORLD_SIZE=str(nproc), LOCAL_RANK=str(rank))
            env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True, cwd=REPO))
    outputs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        sys.exit(f"bench_distributed: configuration {config} failed (exit {[p.returncode for p in procs]})")
    per_rank = [
        json.loads([line for line in o.splitlines() if line.startswith("RESULT ")][-1][len("RESULT ") :])
        for o in outputs
    ]
    result = per_rank[0]
    result["rss_ops_mb_all"] = [r.get("rss_ops_mb", 0.0) for r in per_rank]
    result["rss_peak_mb_all"] = [r["rss_peak_mb"] for r in per_rank]
    return result


def fastest(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    return min(rounds, key=lambda r: r.get("solve_s", r.get("product_s", r.get("allreduce_s", 0.0))))


def report(best: dict[str, dict[str, Any]], loads: list[tuple[str, float]]) -> None:
    print(
        "\nconfig  product_s  min_s    compute_s reduce_s check_s  allreduce_s solve_s hvps  MB/rank: base +ops +peak"
    )
    for name, r in best.items():
        if name == "allreduce":
            continue
        row = f"{name:6s}  {r['product_s']:.4f}     {r['product_min_s']:.4f}  "
        row += "".join(
            f"{r[k]:.4f}    " if k in r else "  -       " for k in ("compute_s", "reduce_s", "check_s")
        )
        row += f"{r['allreduce_s']:.5f}    " if "allreduce_s" in r else "  -         "
        row += f"{r['solve_s']:6.2f}  {r['solve_hvps']:4d}  " if "solve_s" in r else "  -      -    "
        row += f"{r['rss_base_mb']:.0f} +{max(r['rss_ops_mb_all']):.0f} +{max(r['rss_peak_mb_all']):.0f}"
        print(row)
    if "allreduce" in best:
        a = best["allreduce"]
        gb = a["numel"] * 8 / 1e9
        print(
            f"\ngloo all_reduce of {a['numel']:,} float64 ({gb:.2f} GB) between 2 processes: {a['allreduce_s']:.3f} s"
        )
    print("\nratios, measured side by side (> 1: the second is faster)")
    for a, b in (("1x1", "2x1"), ("1x2", "2x1"), ("1x1", "1x2"), ("1x1", "1x1d")):
        if a in best and b in best:
            prod = best[a]["product_s"] / best[b]["product_s"]
            line = f"  product {a} / {b}: {prod:.2f}"
            if "solve_s" in best[a] and "solve_s" in best[b]:
                line += f"   top-k solve {a} / {b}: {best[a]['solve_s'] / best[b]['solve_s']:.2f}"
            print(line)
    if "2x1" in best and "compute_s" in best["2x1"]:
        r = best["2x1"]
        share = (r["reduce_s"] + r["check_s"]) / (r["compute_s"] + r["reduce_s"] + r["check_s"])
        print(f"  2x1 communication share of a product (all_reduce incl. waiting + check): {share:.1%}")
        print(f"  2x1 all_reduce alone / product: {r['allreduce_s'] / r['product_s']:.1%}")
    print("\nload average (1 min) at each run: " + ", ".join(f"{c} {load:.1f}" for c, load in loads))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        config, spec_path, opts = sys.argv[2], Path(sys.argv[3]), json.loads(sys.argv[4])
        torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
        result = (
            allreduce_worker(opts["allreduce_numel"])
            if config == "allreduce"
            else worker(spec_path, config, opts)
        )
        print("RESULT " + json.dumps(result), flush=True)
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--data-root", default=os.environ.get("HESSDYN_SHARED_DATA", str(REPO.parent / "shared" / "data"))
    )
    p.add_argument("--model", choices=["mlp", "wrn"], default="mlp")
    p.add_argument("--synthetic", action="store_true", help="random inputs of the data's shape (timing only)")
    p.add_argument("--depth", type=int, default=14, help="WRN depth, 6n+2 (14: Zagoruyko's WRN-16)")
    p.add_argument("--width", type=int, default=4)
    p.add_argument("--n", type=int, default=5000, help="Hessian-set size")
    p.add_argument(
        "--batch-size", type=int, default=None, help="batch size of the curvature pass (default: one)"
    )
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--products", type=int, default=10)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--configs", nargs="+", default=None)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--dtype", choices=list(DTYPES), default="float64")
    p.add_argument("--no-solve", action="store_true")
    p.add_argument("--allreduce-numel", type=int, default=0)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument(
        "--omp-wait-policy",
        choices=["active", "passive"],
        default=None,
        help="OMP_WAIT_POLICY of the workers (passive: threads sleep instead of spinning, for a shared machine)",
    )
    args = p.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("bench_distributed: --device cuda but no CUDA device is visible")
    if find_data(args) is None:
        what = "MNIST (MNIST/raw)" if args.model == "mlp" else "CIFAR-10 format (cifar-10-batches-py/)"
        print(f"bench_distributed: skipped: no {what} under {args.data_root}; pass --data-root DIR")
        return
    configs = args.configs or (["1x1", "1x1d"] if args.device == "cuda" else ["1x1", "1x2", "2x1", "1x1d"])
    opts = {
        "device": args.device,
        "dtype": args.dtype,
        "products": args.products,
        "k": args.k,
        "solve": not args.no_solve,
        "batch_size": args.batch_size,
        "allreduce_numel": args.allreduce_numel,
        "omp_wait_policy": args.omp_wait_policy,
    }
    with tempfile.TemporaryDirectory() as tmp:
        spec_path = prepare(args, Path(tmp))
        rounds: dict[str, list[dict[str, Any]]] = {c: [] for c in configs}
        loads: list[tuple[str, float]] = []
        for _ in range(args.repeats):
            for config in configs:
                loads.append((config, os.getloadavg()[0]))
                rounds[config].append(run_config(config, spec_path, opts))
        if args.allreduce_numel:
            loads.append(("allreduce", os.getloadavg()[0]))
            rounds["allreduce"] = [run_config("allreduce", spec_path, opts)]
    best = {c: fastest(r) for c, r in rounds.items()}
    first = next(iter(best.values()))
    print(
        f"bench_distributed: {args.model} P = {first.get('P', '-')}, Hessian set N = {first.get('N', '-')}, "
        f"{args.dtype} on {args.device}, {args.repeats} rounds (fastest shown), {os.cpu_count()} CPUs"
    )
    report(best, loads)
    if args.json:
        args.json.write_text(json.dumps({"best": best, "rounds": rounds, "loads": loads}, indent=1))


if __name__ == "__main__":
    main()
