"""The thread policy (hessdyn.threads): usable CPUs, launcher shares, precedence, bad input, recording."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from hessdyn import threads as t
from hessdyn.commands.preflight import preflight
from hessdyn.config.errors import HessdynError
from hessdyn.store import RunDir

BASIC = t.LauncherShare("basic")
JOBLIB = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
SUBMITIT = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"


# ------------------------------------------------------------------------------------ usable CPUs
@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        (t.CpuFacts(8), t.CpuBudget(8, "affinity")),
        (t.CpuFacts(8, cgroup_quota=1.5), t.CpuBudget(1, "cgroup quota")),  # a 2nd thread would be throttled
        (t.CpuFacts(8, cgroup_quota=0.25), t.CpuBudget(1, "cgroup quota")),
        (t.CpuFacts(2, cgroup_quota=16.0), t.CpuBudget(2, "affinity")),
        (t.CpuFacts(16, cgroup_quota=8.0, slurm_cpus_per_task=4), t.CpuBudget(4, "SLURM_CPUS_PER_TASK")),
        (t.CpuFacts(4, slurm_cpus_per_task=8), t.CpuBudget(4, "affinity")),
    ],
)
def test_usable_cpus_is_the_tightest_limit(facts: t.CpuFacts, expected: t.CpuBudget) -> None:
    assert t.usable_cpus(facts) == expected


def _cgroup(tmp_path: Path, proc: str, files: dict[str, str]) -> float | None:
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    (tmp_path / "proc_cgroup").write_text(proc)
    return t.cgroup_cpu_limit(tmp_path / "fs", tmp_path / "proc_cgroup")


def test_cgroup_v2_quota_of_the_process_own_cgroup(tmp_path: Path) -> None:
    files = {"fs/job/cpu.max": "150000 100000\n", "fs/cpu.max": "max 100000\n"}
    assert _cgroup(tmp_path, "0::/job\n", files) == pytest.approx(1.5)


def test_cgroup_v2_without_quota(tmp_path: Path) -> None:
    assert _cgroup(tmp_path, "0::/\n", {"fs/cpu.max": "max 100000\n"}) is None


def test_cgroup_v1_cfs_quota(tmp_path: Path) -> None:
    files = {"fs/cpu/cpu.cfs_quota_us": "300000\n", "fs/cpu/cpu.cfs_period_us": "100000\n"}
    assert _cgroup(tmp_path, "4:memory:/x\n1:cpu,cpuacct:/\n0::/\n", files) == pytest.approx(3.0)
    files = {"fs/cpu/cpu.cfs_quota_us": "-1\n", "fs/cpu/cpu.cfs_period_us": "100000\n"}
    assert _cgroup(tmp_path, "1:cpu:/\n", files) is None


def test_no_cgroup_files_means_no_quota(tmp_path: Path) -> None:
    assert _cgroup(tmp_path, "garbage", {}) is None


# ------------------------------------------------------------------------------------- launchers
@pytest.mark.parametrize(
    ("node", "cpus", "expected"),
    [
        (None, 8, t.LauncherShare("basic")),
        ({"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}, 8, BASIC),
        ({"_target_": JOBLIB, "n_jobs": 2}, 8, t.LauncherShare("joblib", 2)),
        ({"_target_": JOBLIB, "n_jobs": -1}, 8, t.LauncherShare("joblib", 8)),  # joblib: -1 = every CPU
        ({"_target_": JOBLIB, "n_jobs": -2}, 8, t.LauncherShare("joblib", 7)),
        ({"_target_": SUBMITIT, "cpus_per_task": 4}, 16, t.LauncherShare("submitit", 1, 4)),
    ],
)
def test_launcher_share(node: dict | None, cpus: int, expected: t.LauncherShare) -> None:
    assert t.launcher_share(node, cpus) == expected


# -------------------------------------------------------------------------------------- resolution
def _resolve(setting: object = "auto", cpus: int = 2, share: t.LauncherShare = BASIC, env=None, **kw):
    return t.resolve_threads(setting, t.CpuBudget(cpus, "affinity"), share, env or {}, **kw)


@pytest.mark.parametrize(
    ("cpus", "share", "threads"),
    [
        (2, BASIC, 2),
        (2, t.LauncherShare("joblib", 2), 1),
        (2, t.LauncherShare("joblib", 4), 1),  # never 0
        (16, t.LauncherShare("joblib", 4), 4),
        (16, t.LauncherShare("submitit", 1, 4), 4),
        (2, t.LauncherShare("submitit", 1, 4), 2),
    ],
)
def test_auto_divides_usable_cpus_among_parallel_jobs(
    cpus: int, share: t.LauncherShare, threads: int
) -> None:
    policy = _resolve(cpus=cpus, share=share)
    assert (policy.threads, policy.source, policy.parallel_jobs) == (threads, "auto", share.parallel_jobs)


def test_submitit_cpus_per_task_caps_the_budget() -> None:
    policy = _resolve(cpus=16, share=t.LauncherShare("submitit", 1, 4))
    assert (policy.cpus, policy.cpus_source) == (4, "launcher cpus_per_task")


def test_explicit_setting_wins_over_everything() -> None:
    policy = _resolve(1, cpus=2, env={"OMP_NUM_THREADS": "2", t.USER_THREADS_VAR: "2"})
    assert (policy.threads, policy.source) == (1, "runtime.threads")


def test_users_omp_num_threads_is_respected() -> None:
    assert _resolve(env={"OMP_NUM_THREADS": "1"}).source == "OMP_NUM_THREADS"
    assert _resolve(env={"OMP_NUM_THREADS": "1"}).threads == 1
    # recorded by the first hessdyn process, inherited by a loky worker whose OMP_NUM_THREADS loky rewrote
    policy = _resolve(cpus=8, env={"OMP_NUM_THREADS": "4", t.USER_THREADS_VAR: "3"})
    assert (policy.threads, policy.source) == (3, "OMP_NUM_THREADS")


def test_loky_workers_omp_num_threads_is_not_mistaken_for_the_users() -> None:
    # the user set nothing (marker empty); loky wrote OMP_NUM_THREADS = cpu_count // n_jobs into the worker
    env = {"OMP_NUM_THREADS": "4", t.USER_THREADS_VAR: ""}
    policy = _resolve(cpus=8, share=t.LauncherShare("joblib", 4), env=env)
    assert (policy.threads, policy.source) == (2, "auto")


@pytest.mark.parametrize("bad", [0, -1, "0", "two", "1.5", ""])
def test_bad_setting_is_one_line_naming_the_key(bad: object) -> None:
    with pytest.raises(HessdynError) as info:
        _resolve(bad)
    assert "runtime.threads" in str(info.value) and "\n" not in str(info.value)


def test_more_threads_than_cpus_needs_the_override() -> None:
    with pytest.raises(HessdynError, match=r"runtime.threads.*8 threads.*2 CPU.*runtime.oversubscribe=true"):
        _resolve(8, cpus=2)
    policy = _resolve(8, cpus=2, oversubscribe=True)
    assert policy.threads == 8 and "more threads than" in policy.note


def test_fit_workload_keeps_tiny_models_on_one_thread() -> None:
    auto = _resolve(cpus=8)
    assert t.fit_workload(auto, t.SMALL_MODEL_PARAMS - 1).threads == 1
    assert t.fit_workload(auto, t.SMALL_MODEL_PARAMS).threads == 8
    assert t.fit_workload(_resolve(4, cpus=8), 10).threads == 4  # an explicit choice is kept


def test_resume_keeps_the_recorded_thread_count() -> None:
    policy = _resolve(cpus=8)
    kept = t.check_resume({"threads": 2, "source": "auto"}, policy)
    assert (kept.threads, kept.source) == (2, "resumed run")
    assert t.check_resume(None, policy) == policy  # a run recorded before policies existed
    assert t.check_resume({"threads": 8}, policy) == policy


def test_prepare_environment_sets_passive_waiting_unless_the_user_chose() -> None:
    env: dict[str, str] = {}
    t.prepare_environment(env)
    assert env == {"OMP_WAIT_POLICY": "PASSIVE", t.USER_THREADS_VAR: ""}
    env = {"OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "3"}
    t.prepare_environment(env)
    assert env["OMP_WAIT_POLICY"] == "ACTIVE" and env[t.USER_THREADS_VAR] == "3"
    env = {"GOMP_SPINCOUNT": "10000"}  # a libgomp spin count is a choice too
    t.prepare_environment(env)
    assert "OMP_WAIT_POLICY" not in env
    env = {"OMP_NUM_THREADS": "1", t.USER_THREADS_VAR: ""}  # a loky worker of a hessdyn process
    t.prepare_environment(env)
    assert env[t.USER_THREADS_VAR] == ""


# ------------------------------------------------------------------------------- config and CLI
@pytest.mark.parametrize("command", ["train", "analyze", "report"])
def test_preflight_refuses_zero_threads_in_every_command(command: str) -> None:
    with pytest.raises(HessdynError) as info:
        preflight(command, ["runtime.threads=0"], multirun=False, check=None)
    assert str(info.value).startswith("invalid value for 'runtime.threads'")


def test_preflight_oversubscription_refused_then_warned(capsys) -> None:
    too_many = t.usable_cpus(t.read_cpu_facts()).cpus + 1
    with pytest.raises(HessdynError, match="runtime.oversubscribe=true"):
        preflight("train", [f"runtime.threads={too_many}"], multirun=False, check=None)
    preflight("train", [f"runtime.threads={too_many}", "runtime.oversubscribe=true"], False, None)
    assert f"warning: runtime.threads={too_many}" in capsys.readouterr().err


def test_runtime_never_names_or_changes_a_run() -> None:
    from hessdyn.config import config_hash, run_dirname

    assert run_dirname(["runtime.threads=1", "seed=1"]) == "seed=1"
    assert config_hash({"seed": 0, "runtime": {"threads": "1"}}) == config_hash({"seed": 0})


# what a user's shell without thread settings looks like (the developer's shell may export some)
UNSET = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", t.USER_THREADS_VAR)


@pytest.mark.slow
def test_train_and_analyze_record_the_policy(run_cli, tmp_path: Path) -> None:
    base = ["trainer.max_steps=20", "checkpoint.schedule=list", "checkpoint.steps=[10]"]
    run_cli("train", *base, "runtime.threads=1", check=True, unset=UNSET)
    run_dir = next((tmp_path / "results").rglob("run.json")).parent
    record = json.loads((run_dir / "run.json").read_text())["threads"]
    assert record["threads"] == 1 and record["source"] == "runtime.threads"
    assert record["wait_policy"] == "PASSIVE" and record["launcher"] == "basic"
    analyze = [
        "analysis=quick",
        "analysis.top_k=2",
        "analysis.metrics=[spectrum]",
        "analysis.hessian_set=100",
    ]
    env = {"OMP_NUM_THREADS": "1"}
    run_cli("analyze", f"run_dir={run_dir}", *analyze, check=True, env=env, unset=UNSET[1:])
    meta = json.loads(RunDir(run_dir).analysis("quick").meta_path.read_text())["threads"]
    assert meta["threads"] == 1 and meta["source"] == "OMP_NUM_THREADS"


@pytest.mark.slow
def test_joblib_sweep_shares_the_cpus_and_ignores_lokys_env(run_cli, tmp_path: Path) -> None:
    args = ["-m", "seed=0,1", "trainer.max_steps=5", "checkpoint.schedule=list", "checkpoint.steps=[5]"]
    run_cli("train", *args, "model.widths=[256,256]", "hydra/launcher=joblib", check=True, unset=UNSET)
    records = [json.loads(p.read_text())["threads"] for p in (tmp_path / "results").rglob("run.json")]
    cpus = t.usable_cpus(t.read_cpu_facts()).cpus
    assert len(records) == 2
    for record in records:
        assert (record["launcher"], record["parallel_jobs"], record["source"]) == ("joblib", 2, "auto")
        assert record["threads"] == max(1, cpus // 2)


def test_resumed_run_keeps_its_thread_count(tmp_path: Path) -> None:
    from hessdyn.training.loop import train
    from tests.training.helpers import typed_config

    cfg = typed_config(["trainer.max_steps=20", "checkpoint.schedule=list", "checkpoint.steps=[10]"])
    before = torch.get_num_threads()
    first = t.ThreadPolicy(1, "runtime.threads", "PASSIVE", 2, "affinity", "basic", 1)
    try:
        train(cfg, tmp_path / "run", threads=first)
        run = RunDir(tmp_path / "run")
        record = run.read_record()
        assert record is not None and record["threads"]["threads"] == 1
        # make it an interrupted run: back to step 10
        run.checkpoints()[-1][1].unlink()
        run.write_record({**record, "status": "running", "steps": 10})
        train(
            cfg, tmp_path / "run", threads=t.ThreadPolicy(2, "runtime.threads", "PASSIVE", 2, "a", "basic", 1)
        )
        resumed = run.read_record()
        assert resumed is not None and resumed["resumes"] == [10]
        assert resumed["threads"]["threads"] == 1 and resumed["threads"]["source"] == "resumed run"
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
