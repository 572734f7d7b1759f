#!/usr/bin/env python
"""Thread policy under contention: hessdyn's ``runtime.threads=auto`` against the old OpenMP defaults.

Three workloads, each run as the ``hessdyn`` command a user types (a subprocess per measurement):

1. the analysis of a quickstart-sized run (digits, 32-32 MLP, 400 steps, its 9 checkpoints, the
   quickstart's own analysis settings: ``settings_from_run=true force=true``);
2. training that run (400 steps with its evaluations and checkpoints);
3. the 4-run quickstart sweep, training then analysis, under ``hydra/launcher=joblib`` (2 jobs) against
   the basic launcher.

Workloads 1 and 2 are measured quiet and beside one competing busy process (``python -c "while True:
pass"``), under three thread settings: ``old default`` (what hessdyn did before: all CPUs, OpenMP's
default spin-then-sleep wait, reproduced by ``GOMP_SPINCOUNT=300000``, libgomp's default spin count),
``old 1 thread`` (``OMP_NUM_THREADS=1``, the issue's reference) and ``auto`` (the new policy, nothing
set). Conditions alternate within each repeat so all see the same machine load; medians are printed with
the ratios the issue sets targets for (issue 16):

- beside a busy process, auto <= 1.3x the quiet single-thread time;
- quiet, auto <= 1.05x the old default;
- the joblib sweep <= 0.65x the basic launcher.

usage: python scripts/bench_contention.py [--repeats 3] [--old-timeout 120] [--skip-sweep | --only-sweep]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

HESSDYN = [sys.executable, "-m", "hessdyn"]
THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OMP_WAIT_POLICY",
    "GOMP_SPINCOUNT",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
)
HIDDEN = "HESSDYN_USER_OMP_NUM_THREADS"  # hessdyn.threads.USER_THREADS_VAR
SETTINGS = {
    "old default": {"GOMP_SPINCOUNT": "300000", "OMP_NUM_THREADS": str(os.cpu_count() or 1)},
    "old 1 thread": {"OMP_NUM_THREADS": "1", "GOMP_SPINCOUNT": "300000"},
    "auto": {},
}
QUICKSTART = ["experiment=quickstart", "optimizer=sgd", "seed=0", "trainer.progress=false"]


def env_for(setting: str, results: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (*THREAD_VARS, HIDDEN)}
    return {**env, **SETTINGS[setting], "HESSDYN_RESULTS": str(results), "PYTHONUNBUFFERED": "1"}


def timed(args: list[str], env: dict[str, str], timeout: float | None = None) -> float:
    """Wall seconds of ``hessdyn ARGS``; inf when it ran past ``timeout`` (killed)."""
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([*HESSDYN, *args], env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return float("inf")
    if proc.returncode != 0:
        raise SystemExit(f"hessdyn {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0


@contextlib.contextmanager
def busy(on: bool) -> Iterator[None]:
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if on else None
    try:
        time.sleep(0.5 if on else 0.0)
        yield
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()


def recorded_threads(results: Path) -> str:
    record = json.loads(next(results.rglob("run.json")).read_text()).get("threads", {})
    return f"{record.get('threads')} thread(s), {record.get('source')}, wait {record.get('wait_policy')}"


def measure_single(root: Path, repeats: int, old_timeout: float) -> dict[tuple[str, str, bool], list[float]]:
    """Training and analysis of one quickstart run, every setting quiet and busy, interleaved."""
    times: dict[tuple[str, str, bool], list[float]] = {}
    analyzed = root / "analyzed"
    timed(["train", *QUICKSTART], env_for("auto", analyzed))
    run_dir = next(analyzed.rglob("run.json")).parent
    analyze = ["analyze", f"run_dir={run_dir}", "settings_from_run=true", "force=true"]
    for r in range(repeats):
        for loaded in (False, True):
            for setting in SETTINGS:
                # the old default can stall for minutes on a loaded machine: cut it off (inf in the table)
                limit = old_timeout if setting == "old default" else None
                with busy(loaded):
                    out = root / f"train-{r}-{loaded}-{setting.replace(' ', '_')}"
                    t_train = timed(["train", *QUICKSTART], env_for(setting, out), limit)
                    t_an = timed(analyze, env_for(setting, analyzed), limit)
                times.setdefault(("train", setting, loaded), []).append(t_train)
                times.setdefault(("analyze", setting, loaded), []).append(t_an)
                if r == 0 and not loaded and t_train != float("inf"):
                    print(f"  {setting:>12}: recorded {recorded_threads(out)}", flush=True)
                shutil.rmtree(out, ignore_errors=True)
    return times


def measure_sweep(root: Path, repeats: int) -> dict[str, list[float]]:
    """The 4-run quickstart, training then analysis, basic launcher vs joblib (2 jobs); policy auto."""
    times: dict[str, list[float]] = {}
    for r in range(repeats):
        for launcher in ("basic", "joblib"):
            results = root / f"sweep-{r}-{launcher}"
            extra = ["hydra/launcher=joblib"] if launcher == "joblib" else []
            env = env_for("auto", results)
            t = timed(["train", "-m", "experiment=quickstart", "trainer.progress=false", *extra], env)
            runs = sorted(f"'{p.parent}'" for p in results.rglob("run.json"))  # quoted: names hold = and ,
            t += timed(["analyze", "-m", "run_dir=" + ",".join(runs), "settings_from_run=true", *extra], env)
            times.setdefault(launcher, []).append(t)
            shutil.rmtree(results, ignore_errors=True)
    return times


def med(values: list[float]) -> float:
    return statistics.median(values)


def report(times: dict[tuple[str, str, bool], list[float]]) -> None:
    print(
        f"\n{'workload':>8} {'setting':>12} {'quiet s':>9} {'busy s':>9}  (medians; each command's wall clock)"
    )
    for work in ("analyze", "train"):
        for setting in SETTINGS:
            q, b = med(times[(work, setting, False)]), med(times[(work, setting, True)])
            print(f"{work:>8} {setting:>12} {q:>9.2f} {b:>9.2f}")
    for work in ("analyze", "train"):
        one = med(times[(work, "old 1 thread", False)])
        print(f"\n{work}:")
        print(
            f"  busy, auto / quiet 1 thread:        {med(times[(work, 'auto', True)]) / one:6.2f}   target <= 1.3"
        )
        print(
            f"  busy, old default / quiet 1 thread: {med(times[(work, 'old default', True)]) / one:6.2f}   "
            "(the collapse; inf = ran past --old-timeout)"
        )
        old = med(times[(work, "old default", False)])
        print(
            f"  quiet, auto / old default:          {med(times[(work, 'auto', False)]) / old:6.2f}   target <= 1.05"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sweep-repeats", type=int, default=1)
    parser.add_argument(
        "--old-timeout", type=float, default=120.0, help="seconds before an old-default run is cut off"
    )
    parser.add_argument("--skip-sweep", action="store_true")
    parser.add_argument("--only-sweep", action="store_true")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs; load average before: {os.getloadavg()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if not args.only_sweep:
            report(measure_single(root, args.repeats, args.old_timeout))
        if not args.skip_sweep:
            sweep = measure_sweep(root, args.sweep_repeats)
            basic, joblib = med(sweep["basic"]), med(sweep["joblib"])
            print(f"\n4-run quickstart train+analyze: basic {basic:.1f} s, joblib (2 jobs) {joblib:.1f} s")
            print(f"  joblib / basic: {joblib / basic:.2f}   target <= 0.65")
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
