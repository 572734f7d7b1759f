"""The process's thread policy: how many intra-op threads torch and BLAS use, and how idle threads wait.

Small curvature workloads are thousands of short kernels. With OpenMP's default (spinning) wait policy,
a kernel whose helper thread has been descheduled by another busy process waits a whole scheduler slice
for it: on a 2-core machine beside one pure-Python busy loop an analysis ran 59x slower (issue 16). Two
things fix it: idle threads sleep instead of spinning (``OMP_WAIT_POLICY=PASSIVE``, which must be in the
environment before libgomp loads, i.e. before torch is imported: :func:`prepare_environment`), and a
process uses no more threads than the CPUs it may actually use, shared among the parallel jobs of its
launcher (:func:`resolve_threads`).

Everything here is pure (facts about the machine are arguments) except the small readers
:func:`affinity_cpus`, :func:`cgroup_cpu_limit`, :func:`read_cpu_facts` and :func:`apply`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, MutableMapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from hessdyn.config.errors import ConfigValueError

WAIT_POLICY_VAR = "OMP_WAIT_POLICY"
THREADS_VAR = "OMP_NUM_THREADS"
SPINCOUNT_VAR = "GOMP_SPINCOUNT"
# OMP_NUM_THREADS as the user's shell gave it to the first hessdyn process ("" = not set). Inherited by
# every process hessdyn starts (pipeline stages, joblib/loky workers, submitit jobs), so that a worker can
# tell a user's explicit OMP_NUM_THREADS from the one loky writes into its workers' environment.
USER_THREADS_VAR = "HESSDYN_USER_OMP_NUM_THREADS"
DEFAULT_WAIT_POLICY = "PASSIVE"

# Below this many parameters a model's kernels are too short for a second thread to pay for waking it
# (measured: scripts/bench_contention.py and docs/measurements.md, "thread policy").
SMALL_MODEL_PARAMS = 20_000


class ThreadsValueError(ConfigValueError):
    def __init__(self, problem: str) -> None:
        super().__init__("runtime.threads", problem)


@dataclass(frozen=True)
class CpuFacts:
    """What limits the CPUs this process may use; None = no such limit."""

    affinity: int  # len(os.sched_getaffinity(0)), or os.cpu_count() where affinity is not available
    cgroup_quota: float | None = None  # cgroup v2 cpu.max / v1 cfs quota, in CPUs (1.5 = 150 ms per 100 ms)
    slurm_cpus_per_task: int | None = None  # $SLURM_CPUS_PER_TASK


@dataclass(frozen=True)
class CpuBudget:
    cpus: int  # CPUs usable by this process (>= 1)
    source: str  # which limit set it: affinity | cgroup quota | SLURM_CPUS_PER_TASK


@dataclass(frozen=True)
class LauncherShare:
    """How a Hydra launcher shares the machine: concurrent jobs, and a per-job CPU cap (submitit)."""

    name: str  # basic | joblib | submitit
    parallel_jobs: int = 1
    cpus_per_task: int | None = None


@dataclass(frozen=True)
class ThreadPolicy:
    """The resolved policy of one process (what run.json and analysis.json record)."""

    threads: int  # torch intra-op threads, and BLAS threads (NumPy/SciPy)
    source: str  # auto | runtime.threads | OMP_NUM_THREADS | resumed run | caller
    wait_policy: str  # OMP_WAIT_POLICY as the process's OpenMP runtime read it ("default" = unset)
    cpus: int  # CPUs usable by this process
    cpus_source: str
    launcher: str
    parallel_jobs: int
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------------------------------- parsing
def parse_setting(value: object) -> int | None:
    """``runtime.threads``: ``auto`` -> None, a positive integer -> itself; anything else raises one line."""
    text = str(getattr(value, "value", value)).strip().lower()
    if text == "auto":
        return None
    try:
        n = int(text)
    except ValueError:
        raise ThreadsValueError(f"must be auto or a positive integer, got '{value}'") from None
    if n <= 0:
        raise ThreadsValueError(f"must be auto or a positive integer, got {n}")
    return n


def _positive_int(text: str | None) -> int | None:
    try:
        n = int(str(text).strip()) if text is not None else 0
    except ValueError:
        return None
    return n if n > 0 else None


# ------------------------------------------------------------------------------------ machine facts
def affinity_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS, Windows
        return os.cpu_count() or 1


def cgroup_cpu_limit(root: Path = Path("/sys/fs/cgroup"), proc_cgroup: Path | None = None) -> float | None:
    """The CPU quota of this process's cgroup in CPUs (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``), or None.

    ``proc_cgroup`` is ``/proc/self/cgroup``; the quota is looked up in this process's own cgroup folder
    first, then at the root (inside a container both are the container's).
    """
    proc_cgroup = proc_cgroup or Path("/proc/self/cgroup")
    v2_rel, v1_rel = "", ""
    try:
        for line in proc_cgroup.read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if controllers == "":
                v2_rel = path.lstrip("/")
            elif "cpu" in controllers.split(","):
                v1_rel = path.lstrip("/")
    except (OSError, ValueError):
        pass
    for folder in dict.fromkeys([root / v2_rel, root]):
        quota = _read_cpu_max(folder / "cpu.max")
        if quota is not None:
            return quota
    for v1 in ("cpu", "cpu,cpuacct"):
        for folder in dict.fromkeys([root / v1 / v1_rel, root / v1]):
            quota = _read_cfs(folder)
            if quota is not None:
                return quota
    return None


def _read_cpu_max(path: Path) -> float | None:
    try:
        quota, period = path.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max" or float(period) <= 0:
        return None
    return float(quota) / float(period)


def _read_cfs(folder: Path) -> float | None:
    try:
        quota = float((folder / "cpu.cfs_quota_us").read_text())
        period = float((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def read_cpu_facts(environ: Mapping[str, str] | None = None) -> CpuFacts:
    environ = os.environ if environ is None else environ
    return CpuFacts(
        affinity=affinity_cpus(),
        cgroup_quota=cgroup_cpu_limit(),
        slurm_cpus_per_task=_positive_int(environ.get("SLURM_CPUS_PER_TASK")),
    )


def usable_cpus(facts: CpuFacts) -> CpuBudget:
    """The CPUs this process may use: the tightest of its affinity mask, cgroup quota and SLURM allocation.

    A fractional quota is rounded down (1.5 CPUs -> 1: a second thread would be throttled), never below 1.
    """
    budget = CpuBudget(max(1, facts.affinity), "affinity")
    if facts.cgroup_quota is not None:
        quota = max(1, math.floor(facts.cgroup_quota))
        if quota < budget.cpus:
            budget = CpuBudget(quota, "cgroup quota")
    if facts.slurm_cpus_per_task is not None and facts.slurm_cpus_per_task < budget.cpus:
        budget = CpuBudget(facts.slurm_cpus_per_task, "SLURM_CPUS_PER_TASK")
    return budget


def launcher_share(launcher: Mapping[str, Any] | None, cpus: int) -> LauncherShare:
    """Read Hydra's ``hydra.launcher`` node: joblib runs ``n_jobs`` jobs at once (-1 = one per CPU, as in
    joblib); submitit gives each job ``cpus_per_task``; the basic launcher runs one job at a time."""
    target = str((launcher or {}).get("_target_", ""))
    if "Joblib" in target:
        n_jobs = int((launcher or {}).get("n_jobs") or 1)
        jobs = cpus + 1 + n_jobs if n_jobs < 0 else n_jobs
        return LauncherShare("joblib", max(1, jobs))
    if "ubmitit" in target or "Slurm" in target:
        return LauncherShare("submitit", 1, _positive_int((launcher or {}).get("cpus_per_task")))
    return LauncherShare("basic")


# --------------------------------------------------------------------------------------- resolution
def resolve_threads(
    setting: object,
    budget: CpuBudget,
    share: LauncherShare,
    environ: Mapping[str, str],
    *,
    oversubscribe: bool = False,
) -> ThreadPolicy:
    """The thread count of one job.

    Precedence: an explicit ``runtime.threads=N``; else the user's own ``OMP_NUM_THREADS`` (as the first
    hessdyn process saw it: not the value loky writes into joblib workers); else ``auto``: the usable CPUs
    (capped by submitit's ``cpus_per_task``) divided among the launcher's concurrent jobs (see also
    :func:`fit_workload`). ``N`` above the usable CPUs raises unless ``oversubscribe``.
    """
    cpus, cpus_source = budget.cpus, budget.source
    if share.cpus_per_task is not None and share.cpus_per_task < cpus:
        cpus, cpus_source = share.cpus_per_task, "launcher cpus_per_task"
    base = ThreadPolicy(0, "", wait_policy(environ), cpus, cpus_source, share.name, share.parallel_jobs)
    explicit = parse_setting(setting)
    if explicit is not None:
        if explicit > cpus and not oversubscribe:
            raise ThreadsValueError(
                f"{explicit} threads but this process may use {cpus} CPU(s) ({cpus_source}); "
                "use fewer, auto, or add runtime.oversubscribe=true"
            )
        note = f"more threads than the {cpus} usable CPU(s)" if explicit > cpus else ""
        return replace(base, threads=explicit, source="runtime.threads", note=note)
    user = user_omp_threads(environ)
    if user is not None:
        return replace(base, threads=user, source=THREADS_VAR)
    threads = max(1, cpus // share.parallel_jobs)
    return replace(base, threads=threads, source="auto", note=f"{cpus} CPU(s) / {share.parallel_jobs} job(s)")


def fit_workload(policy: ThreadPolicy, num_params: int) -> ThreadPolicy:
    """An ``auto`` policy for a model of ``num_params`` parameters: 1 thread under
    :data:`SMALL_MODEL_PARAMS` (its kernels are too short to gain from a second thread, and lose much when
    that thread is descheduled); an explicit or user-chosen count is kept as it is."""
    if policy.source != "auto" or policy.threads == 1 or num_params >= SMALL_MODEL_PARAMS:
        return policy
    note = f"{policy.note}; 1 thread for a model under {SMALL_MODEL_PARAMS:,} parameters ({num_params:,})"
    return replace(policy, threads=1, note=note)


def user_omp_threads(environ: Mapping[str, str]) -> int | None:
    """The user's explicit OMP_NUM_THREADS, or None. Inside hessdyn's own processes the value recorded by
    :func:`prepare_environment` wins over the live variable, which loky overwrites in joblib workers."""
    if USER_THREADS_VAR in environ:
        return _positive_int(environ[USER_THREADS_VAR])
    return _positive_int(environ.get(THREADS_VAR))


def wait_policy(environ: Mapping[str, str]) -> str:
    """How idle OpenMP threads wait, as the environment tells the OpenMP runtime."""
    policy = environ.get(WAIT_POLICY_VAR) or "default"
    spin = environ.get(SPINCOUNT_VAR)
    return f"{policy}, GOMP_SPINCOUNT={spin}" if spin else policy


def pinned(policy: ThreadPolicy, threads: int, source: str, note: str) -> ThreadPolicy:
    """The policy with its thread count fixed by something stronger (a resumed run's own count)."""
    return replace(policy, threads=threads, source=source, note=note)


# ------------------------------------------------------------------------------------ side effects
def prepare_environment(environ: MutableMapping[str, str] | None = None) -> None:
    """Call first thing in a process, before torch or NumPy is imported (OpenMP reads these when it loads).

    Idle OpenMP threads sleep (``OMP_WAIT_POLICY=PASSIVE``) unless the user chose how they wait (that
    variable, or libgomp's ``GOMP_SPINCOUNT``); the user's own OMP_NUM_THREADS (or its absence) is
    remembered for the processes hessdyn starts.
    """
    environ = os.environ if environ is None else environ
    if SPINCOUNT_VAR not in environ:
        environ.setdefault(WAIT_POLICY_VAR, DEFAULT_WAIT_POLICY)
    environ.setdefault(USER_THREADS_VAR, environ.get(THREADS_VAR, ""))


def apply(policy: ThreadPolicy) -> None:
    """Set torch's intra-op threads and the BLAS pools NumPy/SciPy use (threadpoolctl) to the policy."""
    import torch

    if torch.get_num_threads() != policy.threads:
        torch.set_num_threads(policy.threads)
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]
    except ImportError:  # NumPy's BLAS then keeps its own default; torch is what matters
        return
    threadpool_limits(limits=policy.threads, user_api="blas")


def current_policy(source: str = "caller") -> ThreadPolicy:
    """What this process uses now, for a caller (a library user, a test) that set threads itself."""
    import torch

    budget = usable_cpus(read_cpu_facts())
    return ThreadPolicy(
        threads=torch.get_num_threads(),
        source=source,
        wait_policy=wait_policy(os.environ),
        cpus=budget.cpus,
        cpus_source=budget.source,
        launcher="none",
        parallel_jobs=1,
    )


def check_resume(recorded: Mapping[str, Any] | None, policy: ThreadPolicy) -> ThreadPolicy:
    """A resumed training run keeps the thread count it started with (results stay bit for bit)."""
    if not recorded or not isinstance(recorded.get("threads"), int):
        return policy
    threads = int(recorded["threads"])
    if threads == policy.threads:
        return policy
    return pinned(
        policy,
        threads,
        "resumed run",
        f"{policy.threads} ({policy.source}) ignored: the run started with {threads} and keeps them",
    )


__all__ = [
    "CpuBudget",
    "CpuFacts",
    "LauncherShare",
    "ThreadPolicy",
    "apply",
    "cgroup_cpu_limit",
    "check_resume",
    "current_policy",
    "fit_workload",
    "launcher_share",
    "parse_setting",
    "prepare_environment",
    "resolve_threads",
    "usable_cpus",
    "user_omp_threads",
]
