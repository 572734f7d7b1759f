"""``hessdyn train``: the Hydra task and its pre-launch check."""

from __future__ import annotations

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from hessdyn.commands.jobs import job_thread_policy, run_job
from hessdyn.config import changed_keys, config_hash, hashable_config, to_object
from hessdyn.config.errors import DirectoryInUse, HessdynError, interrupt_signal
from hessdyn.io import check_writable
from hessdyn.runtime import resolve_device
from hessdyn.store import RunDir, RunStatus


def job_output_dir(cfg: DictConfig, multirun: bool) -> Path:
    """The directory Hydra will give this job (resolved the way Hydra resolves it)."""
    if multirun:
        return Path(str(cfg.hydra.sweep.dir)) / str(cfg.hydra.sweep.subdir)
    return Path(str(cfg.hydra.run.dir))


def check_run_dir(run_dir: Path, cfg: DictConfig) -> None:
    """Refuse to reuse a run directory that holds a run of another config (nothing is overwritten)."""
    run = RunDir(run_dir)
    record = run.read_record()
    if record is None:
        if run.has_checkpoint_files() and run.checkpoint_config_hash() != config_hash(cfg):
            raise HessdynError(
                f"{run_dir} has checkpoints of another (or an unreadable) config but no run.json; move it "
                "away or choose another name=..."
            )
        return  # a run whose run.json was moved away resumes from its checkpoints
    new_hash = config_hash(cfg)
    if record.get("config_hash") != new_hash:
        changes = changed_keys(record.get("config", {}), hashable_config(cfg))
        shown = "; ".join(changes[:4]) + (" ..." if len(changes) > 4 else "")
        raise HessdynError(
            f"{run_dir} already holds a run of another config ({shown}); "
            "pick another name=... or hydra.run.dir=..., or move the old run away"
        )


def check_train_job(cfg: DictConfig, multirun: bool) -> None:
    """Before Hydra writes the run folder: it is writable, the device exists, the folder holds no other run,
    and the settings fit the model and the data (the sharpness probe's sizes)."""
    from hessdyn.training.sharpness_probe import check_probe_config

    check_probe_config(to_object(cfg))
    run_dir = job_output_dir(cfg, multirun)
    check_writable(run_dir, "out_dir")
    resolve_device(cfg.device)
    check_run_dir(run_dir, cfg)


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
    interrupted = isinstance(exc, KeyboardInterrupt)
    reason = f"interrupted by {interrupt_signal(exc)}" if interrupted else f"{type(exc).__name__}: {exc}"
    run.write_record(
        {
            "status": (RunStatus.INTERRUPTED if interrupted else RunStatus.FAILED).value,
            "error": reason.splitlines()[0] if reason else reason,
            "config_hash": config_hash(cfg),
            "config": hashable_config(cfg),
            "steps": 0,
        },
    )
