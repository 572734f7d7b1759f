"""Run directories with synthetic, deterministic tables in the registered formats (hessdyn.store).

Tables written here test the report on every registered column and on partial data (diverged, running,
unanalyzed runs) quickly: paths come from :class:`hessdyn.store.RunDir`, every table goes through the
store's writer (which refuses a column the registry does not list), the numbers are closed-form
functions of step, rank, seed and optimizer, so a test can recompute any aggregate directly.
``test_real_sweep.py`` checks the report on real ``hessdyn train`` / ``hessdyn analyze`` output.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from hessdyn.store import AnalysisDir, RunDir, table, write_table

OPTIMIZERS = {
    "sgd": {"name": "sgd", "lr": 0.1, "weight_decay": 0.0},
    "momentum": {"name": "momentum", "lr": 0.05, "weight_decay": 0.0, "momentum": 0.9, "nesterov": False},
    "adam": {"name": "adam", "lr": 0.001, "weight_decay": 0.0, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
}
PARAMS = ("0.weight", "0.bias", "2.weight", "2.bias")
STEPS = (0, 1, 3, 10, 30, 100)
TOP_K = 6
NUM_PARAMS = 1234  # analysis.json num_params
ALL_TABLES = ("summary", "spectrum", "layer_mass", "trajectory", "nulls", "density", "reparam", "events")


def train_config(
    optimizer: str, seed: int, lr: float | None = None, widths: Sequence[int] = (16,), max_steps: int = 100
) -> dict[str, Any]:
    opt = dict(OPTIMIZERS[optimizer])
    if lr is not None:
        opt["lr"] = lr
    return {
        "model": {"name": "mlp", "widths": list(widths), "activation": "relu", "bias": True, "dropout": 0.0},
        "dataset": {
            "name": "digits",
            "n_train": None,
            "n_test": None,
            "subset_seed": 0,
            "normalize": True,
            "test_fraction": 0.25,
            "split_seed": 0,
        },
        "optimizer": opt,
        "schedule": {"name": "constant", "warmup_steps": 0},
        "trainer": {
            "max_steps": max_steps,
            "epochs": None,
            "batch_size": 128,
            "log_every": 5,
            "eval_every": 10,
            "eval_batch_size": 2048,
            "grad_clip": None,
            "progress": None,
        },
        "checkpoint": {"schedule": "list", "every": 100, "num": 20, "steps": list(STEPS)},
        "analysis": {"name": "default", "top_k": TOP_K},
        "report": {"group_by": "optimizer"},
        "name": "tiny",
        "out_dir": "${oc.env:HESSDYN_RESULTS,results}",
        "seed": seed,
        "device": "auto",
        "dtype": "float32",
        "deterministic": True,
    }


# ------------------------------------------------------------------------------ closed-form numbers
def opt_index(optimizer: str) -> int:
    return list(OPTIMIZERS).index(optimizer)


def loss_at(step: float, o: int, seed: int, split: str) -> float:
    return 2.3 * math.exp(-step / (40.0 + 10.0 * o)) + 0.05 + 0.01 * seed + (0.1 if split == "test" else 0.0)


def accuracy_at(step: float, o: int, seed: int, split: str) -> float:
    return 1.0 - 0.9 * math.exp(-step / 50.0) - 0.01 * seed - (0.05 if split == "test" else 0.0)


def lambda_max_at(step: float, o: int, seed: int) -> float:
    return 5.0 + 10.0 * (1.0 - math.exp(-step / 30.0)) + 2.0 * o + 0.3 * seed


def ws_exact_at(step: float, o: int, seed: int) -> float:
    return 1.4 * lambda_max_at(step, o, seed) + 0.1 * seed


def eigenvalue_at(step: float, rank: int, o: int, seed: int) -> float:
    return lambda_max_at(step, o, seed) * 0.7 ** (rank - 1)


def ipr_normalized_at(step: float, rank: int, o: int, seed: int) -> float:
    return 1.0 + 2.0 * math.exp(-rank) * (1.0 + step / 100.0) + 0.1 * seed + 0.2 * o


def displacement_at(step_a: float, rank: int, o: int, seed: int, ranked: bool) -> float:
    return (
        (0.1 * rank / TOP_K) * (1.0 + o) * math.exp(-step_a / 50.0) + 0.01 * seed + (0.02 if ranked else 0.0)
    )


def crossings_at(pair: int, o: int, seed: int) -> int:
    """Crossings between consecutive checkpoints number ``pair`` and ``pair + 1`` (none before pair 2)."""
    return (pair + o + seed) % 3 if pair >= 2 else 0


def overlap_at(step_a: float, step_b: float, seed: int) -> float:
    return math.exp(-(step_b - step_a) / (20.0 + step_a)) * (1.0 - 0.01 * seed)


# ------------------------------------------------------------------------------------------ writers
def _write_table(adir: AnalysisDir, name: str, rows: list[dict[str, Any]]) -> None:
    """A table with the columns of ``rows`` (all registered columns when there are no rows)."""
    adir.write_table(name, rows, all_columns=not rows)


def write_train_csv(run_dir: Path, optimizer: str, seed: int, last_step: int, diverged: bool) -> None:
    o, lr = opt_index(optimizer), OPTIMIZERS[optimizer]["lr"]
    rows = []
    for step in range(0, last_step + 1, 5):
        rows.append(
            {
                "step": step,
                "epoch": step / 11,
                "split": "train",
                "source": "batch",
                "loss": loss_at(step, o, seed, "train") * 1.05,
                "accuracy": accuracy_at(step, o, seed, "train") * 0.98,
                "lr": lr,
                "grad_norm": 1.0,
                "update_norm": 0.1,
                "param_norm": 10.0,
                "wall_s": step * 0.01,
            }
        )
        if step % 10 == 0:
            for split in ("train", "test"):
                rows.append(
                    {
                        "step": step,
                        "epoch": step / 11,
                        "split": split,
                        "source": "eval",
                        "loss": loss_at(step, o, seed, split),
                        "accuracy": accuracy_at(step, o, seed, split),
                        "lr": lr,
                        "param_norm": 10.0,
                        "wall_s": step * 0.01,
                    }
                )
    if diverged:  # the divergence step: a non-finite loss
        rows.append(
            {
                "step": last_step,
                "epoch": last_step / 11,
                "split": "train",
                "source": "batch",
                "loss": float("nan"),
                "accuracy": 0.1,
                "lr": lr,
            }
        )
    write_table(RunDir(run_dir).train_csv, table("train"), rows, all_columns=True)


def probe_lambda_at(step: float, o: int, seed: int) -> float:
    """The training-time probe's λmax: the analysis' curve plus a period-2 wiggle (edge-of-stability-like)."""
    return lambda_max_at(step, o, seed) * (1.0 + 0.02 * (-1) ** int(step))


def write_sharpness_csv(run_dir: Path, optimizer: str, seed: int, last_step: int) -> None:
    """metrics/sharpness.csv every 2 steps, ranks 1-2; Adam also preconditioned rows (from step 2), and one
    unconverged rank-1 row (step 4 of seed 1) the report must leave out."""
    o, cfg = opt_index(optimizer), OPTIMIZERS[optimizer]
    lr, beta = cfg["lr"], cfg.get("momentum", cfg.get("beta1", 0.0))
    sgd_like = optimizer in ("sgd", "momentum")
    rows = []
    for step in range(0, last_step + 1, 2):
        lmax = probe_lambda_at(step, o, seed)
        operators = [("hessian", lmax, (2 + 2 * beta) / lr if sgd_like else None)]
        if not sgd_like and step > 0:
            operators.append(("preconditioned", 300.0 + step + 10 * seed, (2 + 2 * beta) / ((1 - beta) * lr)))
        for operator, top, threshold in operators:
            for rank in (1, 2):
                rows.append(
                    {
                        "step": step,
                        "operator": operator,
                        "rank": rank,
                        "eigenvalue": top * 0.8 ** (rank - 1),
                        "residual": 1e-4,
                        "converged": not (seed == 1 and step == 4 and rank == 1),
                        "hvps": 4,
                        "threshold": threshold,
                        "lr": lr,
                        "wall_s": 0.01,
                    }
                )
    write_table(RunDir(run_dir).sharpness_csv, table("sharpness"), rows, all_columns=True)


def write_analysis(
    run_dir: Path,
    optimizer: str,
    seed: int,
    steps: Sequence[int],
    tables: Sequence[str] = ALL_TABLES,
    name: str = "default",
) -> Path:
    """Write ``analysis/`` tables for the given checkpoint steps; returns the folder."""
    o, cfg = opt_index(optimizer), OPTIMIZERS[optimizer]
    lr = cfg["lr"]
    adir = RunDir(run_dir).analysis(name)
    adir.path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1000 * o + seed)
    steps = list(steps)
    if "summary" in tables:
        rows = []
        for s in steps:
            lmax = lambda_max_at(s, o, seed)
            sgd_like = optimizer in ("sgd", "momentum")
            beta = cfg.get("momentum", cfg.get("beta1", 0.0))
            rows.append(
                {
                    "step": s,
                    "epoch": s / 11,
                    "lambda_max": lmax,
                    "lambda_min": -0.1 * lmax,
                    "trace": 3 * lmax + 10,
                    "trace_se": 0.5,
                    "trace_sq": lmax**2 * 1.5,
                    "trace_sq_se": 0.3,
                    "ws_bound": 1.5 * lmax,
                    "ws_bound_se": 0.2,
                    "ws_lower": 0.5 * lmax,
                    "lambda_max_over_ws": 1 / 1.5,
                    "trace_exact": 3 * lmax + 10.5,
                    "trace_sq_exact": lmax**2 * 1.4,
                    "ws_bound_exact": ws_exact_at(s, o, seed),
                    "ws_lower_exact": 0.6 * lmax,
                    "lambda_max_over_ws_exact": lmax / ws_exact_at(s, o, seed),
                    "loss": loss_at(s, o, seed, "train"),
                    "grad_norm": 1.0,
                    "lr": lr,
                    "sharpness_lr": lr * lmax,
                    "stability_threshold": (2 + 2 * beta) / lr if sgd_like else None,
                    "precond_lambda_max": None if sgd_like else 30000.0 + 1000 * s / 10 + 100 * seed,
                    "precond_threshold": None if sgd_like else (2 + 2 * beta) / ((1 - beta) * lr),
                    "grad_alignment": 0.3 + 0.5 * (1 - math.exp(-s / 20)) + 0.01 * seed,
                    "update_alignment": 0.2 + 0.3 * (1 - math.exp(-s / 20)),
                    "hvps": 200,
                    "wall_s": 1.0,
                    "n_converged": TOP_K,
                }
            )
        _write_table(adir, "summary", rows)
    if "spectrum" in tables:
        rows = []
        for s in steps:
            for r in range(1, TOP_K + 1):
                ipr_n = ipr_normalized_at(s, r, o, seed)
                rows.append(
                    {
                        "step": s,
                        "which": "top",
                        "rank": r,
                        "eigenvalue": eigenvalue_at(s, r, o, seed),
                        "residual": 1e-4,
                        "rel_residual": 1e-5,
                        "converged": True,
                        "ipr": ipr_n * 3 / 1000,
                        "ipr_normalized": ipr_n,
                    }
                )
            for r in (1, 2):
                rows.append(
                    {
                        "step": s,
                        "which": "bottom",
                        "rank": r,
                        "eigenvalue": -0.1 * r,
                        "residual": 1e-4,
                        "rel_residual": 1e-5,
                        "converged": True,
                        "ipr": 0.003,
                        "ipr_normalized": 1.0,
                    }
                )
        _write_table(adir, "spectrum", rows)
    if "layer_mass" in tables:
        rows = []
        for s in steps:
            for r in range(1, TOP_K + 1):
                raw = np.array([3.0 + r + s / 50, 0.5, 1.0 + o, 0.2])
                for p, m in zip(PARAMS, raw / raw.sum(), strict=True):
                    rows.append({"step": s, "rank": r, "param": p, "mass": float(m)})
        _write_table(adir, "layer_mass", rows)
    if "trajectory" in tables:
        rows = []
        first, last = steps[0], steps[-1]
        ranked_pairs = sorted(
            {
                *zip(steps[:-1], steps[1:], strict=True),
                *((first, b) for b in steps[1:]),
                *((a, last) for a in steps[:-1]),
            }
        )
        for a, b in ranked_pairs:
            for r in range(1, TOP_K + 1):
                plain = displacement_at(a, r, o, seed, False)
                ranked = displacement_at(a, r, o, seed, True)
                cluster = 0.5 * plain if r in (4, 5) else plain  # ranks 4, 5: a degenerate pair
                for kind, value in (
                    ("matched_plain", plain),
                    ("matched_cluster", cluster),
                    ("ranked", ranked),
                ):
                    rows.append(
                        {
                            "step_a": a,
                            "step_b": b,
                            "metric": f"displacement_{kind}",
                            "rank": r,
                            "value": value,
                        }
                    )
                    rows.append(
                        {
                            "step_a": a,
                            "step_b": b,
                            "metric": f"overlap_{kind}",
                            "rank": r,
                            "value": 1 - value / 2,
                        }
                    )
        for i, a in enumerate(steps):
            for b in steps[i + 1 :]:
                c = overlap_at(a, b, seed)
                rows.append(
                    {"step_a": a, "step_b": b, "metric": "subspace_overlap", "rank": None, "value": c}
                )
                rows.append(
                    {
                        "step_a": a,
                        "step_b": b,
                        "metric": "grassmann_distance",
                        "rank": None,
                        "value": math.acos(min(1.0, math.sqrt(c))),
                    }
                )
                for kind in ("plain", "cluster"):
                    rows.append(
                        {
                            "step_a": a,
                            "step_b": b,
                            "metric": f"mean_matched_overlap_{kind}",
                            "rank": None,
                            "value": math.sqrt(c),
                        }
                    )
        adir.write_table("trajectory", rows, all_columns=True)
    if "events" in tables:
        rows = [
            {"step_a": a, "step_b": b, "kind": "crossing", "rank_a": 2, "rank_b": 3, "detail": "overlap=0.9"}
            for i, (a, b) in enumerate(zip(steps[:-1], steps[1:], strict=True))
            for _ in range(crossings_at(i, o, seed))
        ]
        if len(steps) > 1:
            rows.append(
                {
                    "step_a": steps[-2],
                    "step_b": steps[-1],
                    "kind": "cluster",
                    "rank_a": 4,
                    "rank_b": 4,
                    "detail": "ranks_a=4+5 ranks_b=4+5 subspace_overlap=0.9",
                }
            )
        adir.write_table("events", rows, all_columns=True)
    if "nulls" in tables:
        rows = [
            {
                "null": "random",
                "seed": i,
                "rank": None,
                "ipr": 0.003,
                "ipr_normalized": 1.0 + 0.05 * rng.standard_normal(),
            }
            for i in range(5)
        ]
        rows += [
            {
                "null": "architecture",
                "seed": i,
                "rank": r,
                "ipr": 0.005,
                "ipr_normalized": 1.6 + 0.1 * r + 0.05 * i,
            }
            for i in range(3)
            for r in range(1, TOP_K + 1)
        ]
        _write_table(adir, "nulls", rows)
    if "density" in tables:
        rows = []
        for s in steps:
            lmax = lambda_max_at(s, o, seed)
            for x in np.linspace(-1.0, 1.1 * lmax, 40):
                rows.append(
                    {
                        "step": s,
                        "eigenvalue": float(x),
                        "density": float(math.exp(-(x**2) / 0.02) * 5 + 0.01 * math.exp(-((x - lmax) ** 2))),
                    }
                )
        _write_table(adir, "density", rows)
    if "reparam" in tables:
        rows = []
        lmax = lambda_max_at(steps[-1], o, seed)
        for alpha in (0.1, 0.3, 1.0, 3.0, 10.0):
            scale = (alpha**2 + alpha**-2) / 2
            rows.append(
                {
                    "step": steps[-1],
                    "alpha": alpha,
                    "output_diff": 1e-7,
                    "loss": 0.1,
                    "lambda_max": lmax * scale,
                    "trace": (3 * lmax + 10) * scale,
                    "eps_sharpness": 1e-3 * scale,
                    "theta_h_theta": 4.0 + seed * 0.1,
                    "scaled_lambda_max": 2.0 + o,
                }
            )
        _write_table(adir, "reparam", rows)
    analysis = {
        "settings": {
            "top_k": TOP_K,
            "solver": "lanczos",
            "tol": 1e-3,
            "hessian_set": 1000,
            "curvature": "hessian",
            "dtype": "float64",
        },
        "hessian_mode": "hessian",
        "num_params": NUM_PARAMS,
        "checkpoints": [{"step": s, "hvps": 200, "wall_s": 1.0, "status": "done"} for s in steps],
        "versions": {"hessdyn": "0.1.0"},
    }
    adir.write_meta(analysis)
    return adir.path


def write_run(
    run_dir: Path,
    optimizer: str = "sgd",
    seed: int = 0,
    *,
    status: str = "completed",
    analyzed: bool = True,
    last_step: int | None = None,
    lr: float | None = None,
    widths: Sequence[int] = (16,),
    tables: Sequence[str] = ALL_TABLES,
    overrides: Sequence[str] | None = None,
    run_json: bool = True,
    probe: bool = False,
) -> Path:
    """One run directory: ``.hydra/``, ``run.json``, ``metrics/train.csv`` (and ``metrics/sharpness.csv`` if
    ``probe``) and (if ``analyzed``) ``analysis/``.

    ``last_step`` < 100 truncates training (a diverged or running run); the analysis then covers the
    checkpoints up to it.
    """
    run = RunDir(run_dir)
    cfg = train_config(optimizer, seed, lr, widths)
    hydra_dir = run.hydra_dir
    hydra_dir.mkdir(parents=True, exist_ok=True)
    run.hydra_config.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    run.hydra_overrides.write_text(
        yaml.safe_dump(list(overrides or [f"optimizer={optimizer}", f"seed={seed}"])), encoding="utf-8"
    )
    run.hydra_settings.write_text(yaml.safe_dump({"hydra": {"job": {"name": "train"}}}), encoding="utf-8")
    if not run_json:
        return run_dir
    last = STEPS[-1] if last_step is None else last_step
    resolved = {k: v for k, v in cfg.items() if k not in ("name", "out_dir", "device", "analysis", "report")}
    record = {
        "status": status,
        "config": resolved,
        "config_hash": f"fake{seed}",
        "steps": last,
        "total_steps": STEPS[-1],
        "wall_s": 1.0,
    }
    run.write_record(record)
    write_train_csv(run_dir, optimizer, seed, last, diverged=status == "diverged")
    if probe:
        write_sharpness_csv(run_dir, optimizer, seed, last)
    if analyzed:
        write_analysis(run_dir, optimizer, seed, [s for s in STEPS if s <= last], tables)
    return run_dir


def make_sweep(
    root: Path, optimizers: Sequence[str] = ("sgd", "adam"), seeds: Sequence[int] = (0, 1), **kwargs: Any
) -> list[Path]:
    """Hydra multirun layout ``root/optimizer=X,seed=S/`` with one completed, analyzed run each."""
    return [write_run(root / f"optimizer={o},seed={s}", o, s, **kwargs) for o in optimizers for s in seeds]
