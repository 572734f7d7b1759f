"""``hessdyn train``: the Hydra task and its pre-launch check."""

from __future__ import annotations

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from hessdyn.commands.jobs import job_thread_policy, run_job
from hessdyn.config import config_hash, hashable_config, to_object
from hessdyn.config.errors import DirectoryInUse, HessdynError
from hessdyn.store import RunDir, RunStatus


def job_output_dir(cfg: DictConfig, multirun: bool) -> Path:
    """The directory Hydra will give this job (resolved the way Hydra resolves it)."""
    if multirun:
        return Path(str(cfg.hydra.sweep.dir)) / str(cfg.hydra.sweep.subdir)
    return Path(str(cfg.hydra.run.dir))


def _changed_keys(old: dict, new: dict, prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(a, dict) and isinstance(b, dict):
            out += _changed_keys(a, b, path)
        elif a != b:
            out.append(f"{path}: {a!r} -> {b!r}")
    return out


def check_run_dir(run_dir: Path, cfg: DictConfig) -> None:
    """Refuse to reuse a run directory that holds a run of another config (nothing is overwritten)."""
    run = RunDir(run_dir)
    record = run.read_record()
    if record is None:
        if run.has_checkpoint_files():
            raise HessdynError(
                f"{run_dir} has checkpoints but no run.json; move it away or choose another name=..."
            )
        return
    new_hash = config_hash(cfg)
    if record.get("config_hash") != new_hash:
        changes = _changed_keys(record.get("config", {}), hashable_config(cfg))
        shown = "; ".join(changes[:4]) + (" ..." if len(changes) > 4 else "")
        raise HessdynError(
            f"{run_dir} already holds a run of another config ({shown}); "
            "pick another name=... or hydra.run.dir=..., or move the old run away"
        )


def check_train_job(cfg: DictConfig, multirun: bool) -> None:
    """What a training job needs before anything is written: a run folder free for this config, and
    settings that fit the model and the data (the sharpness probe's sizes)."""
    from hessdyn.training.sharpness_probe import check_probe_config

    check_probe_config(to_object(cfg))
    check_run_dir(job_output_dir(cfg, multirun), cfg)


def train_task(cfg: DictConfig) -> dict:
    """Hydra task of ``hessdyn train``. In a sweep a failed job is recorded and the sweep goes on."""
    from hessdyn.training.loop import train

    run_dir = Path(HydraConfig.get().runtime.output_dir)

    def body() -> dict:
        check_run_dir(run_dir, cfg)
        typed = to_object(cfg)
        policy = job_thread_policy(typed.runtime)
        try:
            result = train(typed, run_dir, threads=policy)
        except DirectoryInUse:
            raise  # the run belongs to the process that holds it: record nothing
        except BaseException as exc:
            record_early_failure(run_dir, cfg, exc)
            raise
        return {"run_dir": str(run_dir), "status": result.status}

    return run_job("train", body)


def record_early_failure(run_dir: Path, cfg: DictConfig, exc: BaseException) -> None:
    """A job that failed before training started (e.g. missing data) still says so in its run.json,
    so sweeps and reports list it as failed instead of losing it."""
    run = RunDir(run_dir)
    if run.read_record() is not None:
        return  # the loop recorded its own status
    reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"{type(exc).__name__}: {exc}"
    run.write_record(
        {
            "status": RunStatus.FAILED.value,
            "error": reason.splitlines()[0] if reason else reason,
            "config_hash": config_hash(cfg),
            "config": hashable_config(cfg),
            "steps": 0,
        },
    )
