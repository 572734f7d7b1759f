"""The training loop: deterministic, resumable bit for bit, logging a tidy table, checkpointing on a schedule.

Step ``s`` means "after ``s`` optimizer updates": the checkpoint, the eval rows and the parameter norm at
step ``s`` describe the weights after ``s`` updates; the ``batch`` row at step ``s`` averages the
minibatch losses of the updates since the previous row (computed before each update).
"""

from __future__ import annotations

import logging
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import tqdm

from hessdyn.config import config_hash, hashable_config
from hessdyn.config import schema as s
from hessdyn.config.errors import HessdynError
from hessdyn.data import DatasetSplits, TensorSplit, load_dataset
from hessdyn.io import atomic_write_text, exclusive_dir
from hessdyn.models import build_model
from hessdyn.runtime import resolve_device, resolve_dtype, set_determinism
from hessdyn.training.checkpoints import (
    checkpoint_steps,
    list_checkpoints,
    load_checkpoint,
    remove_stale_temporaries,
    save_checkpoint,
)
from hessdyn.training.metrics_log import MetricsLog
from hessdyn.training.optimizers import build_optimizer
from hessdyn.training.run_record import git_commit, read_run_record, versions, write_run_record
from hessdyn.training.schedules import lr_multiplier

log = logging.getLogger("hessdyn.train")

# Seed offsets keep the streams independent: init uses `seed`, batch order and augmentation their own.
_SAMPLER_SEED_OFFSET = 1_000_003
_AUGMENT_SEED_OFFSET = 2_000_003


@dataclass(frozen=True)
class TrainResult:
    status: str  # completed | diverged
    steps: int
    total_steps: int
    wall_s: float
    final_train_loss: float | None
    final_test_loss: float | None
    final_test_accuracy: float | None


@dataclass(frozen=True)
class StepPlan:
    batch_size: int
    steps_per_epoch: int
    total_steps: int
    checkpoint_steps: tuple[int, ...]


def plan_steps(cfg: s.TrainConfig, n_train: int) -> StepPlan:
    batch_size = min(cfg.trainer.batch_size or n_train, n_train)
    steps_per_epoch = math.ceil(n_train / batch_size)
    if cfg.trainer.max_steps is not None:
        total = int(cfg.trainer.max_steps)
    else:
        total = max(1, math.ceil(float(cfg.trainer.epochs) * steps_per_epoch))
    return StepPlan(batch_size, steps_per_epoch, total, tuple(checkpoint_steps(cfg.checkpoint, total)))


@torch.no_grad()
def evaluate(model: torch.nn.Module, split: TensorSplit, batch_size: int) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` (in eval mode) over a whole split."""
    was_training = model.training
    model.eval()
    total_loss = torch.zeros((), dtype=torch.float64, device=split.x.device)
    correct = torch.zeros((), dtype=torch.int64, device=split.x.device)
    for start in range(0, len(split), batch_size):
        xb, yb = split.x[start : start + batch_size], split.y[start : start + batch_size]
        logits = model(xb)
        total_loss += F.cross_entropy(logits, yb, reduction="sum").double()
        correct += (logits.argmax(dim=1) == yb).sum()
    model.train(was_training)
    n = len(split)
    return float(total_loss) / n, float(correct) / n


def _param_norm(model: torch.nn.Module) -> float:
    return float(torch.sqrt(sum((p.detach().double() ** 2).sum() for p in model.parameters())))


def _grad_norm(model: torch.nn.Module) -> float:
    grads = [p.grad.detach().double() for p in model.parameters() if p.grad is not None]
    return float(torch.sqrt(sum((g**2).sum() for g in grads))) if grads else 0.0


class _Sampler:
    """Epoch-wise random permutations from a dedicated generator; its state goes into checkpoints."""

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        self.n, self.batch_size = n, batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.perm: torch.Tensor | None = None
        self.pos = 0

    def next_indices(self) -> torch.Tensor | None:
        """Indices of the next batch (None = the whole split in order: full-batch training)."""
        if self.batch_size >= self.n:
            return None
        if self.perm is None or self.pos >= self.n:
            self.perm = torch.randperm(self.n, generator=self.generator)
            self.pos = 0
        idx = self.perm[self.pos : self.pos + self.batch_size]
        self.pos += self.batch_size
        return idx

    def state(self) -> dict[str, Any]:
        return {
            "generator": self.generator.get_state(),
            "perm": self.perm if self.perm is not None else torch.empty(0, dtype=torch.int64),
            "pos": self.pos,
        }

    def load(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.perm = state["perm"] if state["perm"].numel() else None
        self.pos = int(state["pos"])


def _progress_enabled(setting: bool | None) -> bool:
    return sys.stderr.isatty() if setting is None else bool(setting)


def train(cfg: s.TrainConfig, run_dir: str | Path, data: DatasetSplits | None = None) -> TrainResult:
    """Train (or resume) the run in ``run_dir``; returns its final status.

    Raises HessdynError when ``run_dir`` holds a run of another config, or another process is training
    in it.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with exclusive_dir(run_dir, "hessdyn train"):
        return _train(cfg, run_dir, data)


def _train(cfg: s.TrainConfig, run_dir: Path, data: DatasetSplits | None) -> TrainResult:
    plain_cfg = hashable_config(_as_plain(cfg))
    chash = config_hash(plain_cfg)
    record = read_run_record(run_dir)
    if record is not None and record.get("config_hash") != chash:
        raise HessdynError(
            f"{run_dir} holds a run of another config (hash {record.get('config_hash')} != {chash}); "
            "choose another name=... or hydra.run.dir=..."
        )
    if record is not None and record.get("status") in ("completed", "diverged"):
        log.info(
            "run in %s is already %s at step %s; nothing to do",
            run_dir,
            record["status"],
            record.get("steps"),
        )
        return TrainResult(
            record["status"],
            record.get("steps", 0),
            record.get("total_steps", 0),
            record.get("wall_s", 0.0),
            record.get("final_train_loss"),
            record.get("final_test_loss"),
            record.get("final_test_accuracy"),
        )

    device = resolve_device(cfg.device)
    dtype = resolve_dtype(cfg.dtype)
    set_determinism(cfg.deterministic, device)
    data = data or load_dataset(cfg.dataset, device, dtype)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, data.input_shape, data.num_classes).to(device=device, dtype=dtype)
    optimizer = build_optimizer(cfg.optimizer, model.parameters())
    plan = plan_steps(cfg, len(data.train))
    ckpt_set = set(plan.checkpoint_steps)
    sampler = _Sampler(len(data.train), plan.batch_size, cfg.seed + _SAMPLER_SEED_OFFSET)
    aug_gen = torch.Generator(device=device).manual_seed(cfg.seed + _AUGMENT_SEED_OFFSET)
    base_lrs = [g["lr"] for g in optimizer.param_groups]

    step, wall_before = 0, 0.0
    acc = {"loss": 0.0, "correct": 0, "count": 0}
    remove_stale_temporaries(run_dir)
    existing = list_checkpoints(run_dir)
    resumed_from: int | None = None
    if existing:
        ckpt = load_checkpoint(existing[-1][1], map_location=str(device))
        if ckpt.get("config_hash") != chash:
            raise HessdynError(
                f"{existing[-1][1]} was written by another config (hash {ckpt.get('config_hash')} != {chash}); "
                "choose another name=... or hydra.run.dir=..."
            )
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        torch.set_rng_state(ckpt["rng"]["torch"].cpu())
        if device.type == "cuda" and "cuda" in ckpt["rng"]:
            torch.cuda.set_rng_state(ckpt["rng"]["cuda"].cpu(), device)
        aug_gen.set_state(ckpt["rng"]["augment"].cpu())
        sampler.load({k: (v.cpu() if torch.is_tensor(v) else v) for k, v in ckpt["sampler"].items()})
        acc = dict(ckpt["accumulators"])
        step = int(ckpt["step"])
        wall_before = float(ckpt.get("wall_s", 0.0))
        resumed_from = step
        log.info("resuming %s from step %d of %d", run_dir, step, plan.total_steps)

    hydra_config = run_dir / ".hydra" / "config.yaml"
    if not hydra_config.exists():  # called as a library, not through Hydra: keep the run self-describing
        from omegaconf import OmegaConf

        atomic_write_text(hydra_config, OmegaConf.to_yaml(OmegaConf.structured(cfg)))
    metrics = MetricsLog(run_dir / "metrics" / "train.csv", resume_step=resumed_from)
    base_record = {
        "config_hash": chash,
        "config": plain_cfg,
        "total_steps": plan.total_steps,
        "steps_per_epoch": plan.steps_per_epoch,
        "batch_size": plan.batch_size,
        "checkpoint_steps": list(plan.checkpoint_steps),
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "dataset": {"name": data.name, "n_train": len(data.train), "n_test": len(data.test), **data.info},
        "device": str(device),
        "dtype": str(dtype).replace("torch.", ""),
        "git_commit": git_commit(),
        "versions": versions(),
        "started": (record or {}).get("started", time.strftime("%Y-%m-%dT%H:%M:%S%z")),
        "resumes": (record or {}).get("resumes", []) + ([resumed_from] if resumed_from is not None else []),
    }
    t0 = time.perf_counter()
    last: dict[str, float | None] = {"train": None, "test": None, "test_acc": None}

    def wall() -> float:
        return wall_before + time.perf_counter() - t0

    def record_status(status: str, **extra: Any) -> None:
        write_run_record(
            run_dir,
            {
                **base_record,
                "status": status,
                "steps": step,
                "wall_s": wall(),
                "final_train_loss": last["train"],
                "final_test_loss": last["test"],
                "final_test_accuracy": last["test_acc"],
                **extra,
            },
        )

    def lr_now() -> float:
        return base_lrs[0] * lr_multiplier(cfg.schedule, step, plan.total_steps)

    def eval_rows() -> None:
        for split_name, split in (("train", data.train), ("test", data.test)):
            loss, accuracy = evaluate(model, split, cfg.trainer.eval_batch_size)
            metrics.write(
                step=step,
                epoch=step / plan.steps_per_epoch,
                split=split_name,
                source="eval",
                loss=loss,
                accuracy=accuracy,
                lr=lr_now(),
                param_norm=_param_norm(model),
                wall_s=wall(),
            )
            if split_name == "train":
                last["train"] = loss
            else:
                last["test"], last["test_acc"] = loss, accuracy

    def checkpoint() -> None:
        metrics.flush()
        rng = {"torch": torch.get_rng_state(), "augment": aug_gen.get_state()}
        if device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(device)
        save_checkpoint(
            run_dir,
            {
                "step": step,
                "epoch": step / plan.steps_per_epoch,
                "config_hash": chash,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "rng": rng,
                "sampler": sampler.state(),
                "accumulators": dict(acc),
                "wall_s": wall(),
                "lr": lr_now(),
                "total_steps": plan.total_steps,
            },
        )

    record_status("running")
    model.train()
    bar = tqdm(
        total=plan.total_steps,
        initial=step,
        disable=not _progress_enabled(cfg.trainer.progress),
        desc=run_dir.name[:30],
        unit="step",
        dynamic_ncols=True,
    )
    try:
        if step == 0:
            eval_rows()
            checkpoint()
        while step < plan.total_steps:
            idx = sampler.next_indices()
            if idx is None:
                xb, yb = data.train.x, data.train.y
            else:
                idx = idx.to(data.train.x.device)
                xb, yb = data.train.x.index_select(0, idx), data.train.y.index_select(0, idx)
            if data.augment is not None:
                xb = data.augment(xb, aug_gen)
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            loss_value = float(loss.detach())
            if not math.isfinite(loss_value):
                log.warning(
                    "loss is %s at step %d: run diverged; checkpoints up to step %d are kept",
                    loss_value,
                    step,
                    max((c for c in ckpt_set if c <= step), default=0),
                )
                metrics.write(
                    step=step,
                    epoch=step / plan.steps_per_epoch,
                    split="train",
                    source="batch",
                    loss=loss_value,
                    lr=lr_now(),
                    wall_s=wall(),
                )
                metrics.flush()
                record_status("diverged", diverged_at_step=step)
                return TrainResult(
                    "diverged", step, plan.total_steps, wall(), last["train"], last["test"], last["test_acc"]
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.trainer.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.trainer.grad_clip)
            log_due = (step + 1) % cfg.trainer.log_every == 0 or step + 1 == plan.total_steps
            if log_due:
                grad_norm = _grad_norm(model)
                before = [p.detach().clone() for p in model.parameters()]
            mult = lr_multiplier(cfg.schedule, step, plan.total_steps)
            for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
                group["lr"] = base * mult
            optimizer.step()
            acc["loss"] += loss_value * len(yb)
            acc["correct"] += int((logits.detach().argmax(dim=1) == yb).sum())
            acc["count"] += len(yb)
            step += 1
            bar.update(1)
            if log_due:
                update_norm = float(
                    torch.sqrt(
                        sum(
                            ((p.detach() - b).double() ** 2).sum()
                            for p, b in zip(model.parameters(), before, strict=True)
                        )
                    )
                )
                batch_loss = acc["loss"] / acc["count"]
                metrics.write(
                    step=step,
                    epoch=step / plan.steps_per_epoch,
                    split="train",
                    source="batch",
                    loss=batch_loss,
                    accuracy=acc["correct"] / acc["count"],
                    lr=base_lrs[0] * mult,
                    grad_norm=grad_norm,
                    update_norm=update_norm,
                    param_norm=_param_norm(model),
                    wall_s=wall(),
                )
                bar.set_postfix(loss=f"{batch_loss:.4f}", acc=f"{acc['correct'] / acc['count']:.3f}")
                acc = {"loss": 0.0, "correct": 0, "count": 0}
            target = cfg.trainer.stop_at_train_loss
            if step % cfg.trainer.eval_every == 0 or step in ckpt_set:
                eval_rows()
                if target is not None and last["train"] is not None and last["train"] <= target:
                    # Matched-loss comparisons: the run ends here, with a final checkpoint at this step.
                    checkpoint()
                    log.info("training loss %.4g <= %g at step %d: stopping", last["train"], target, step)
                    record_status("completed", stopped_at_train_loss=target)
                    return TrainResult(
                        "completed",
                        step,
                        plan.total_steps,
                        wall(),
                        last["train"],
                        last["test"],
                        last["test_acc"],
                    )
            if step in ckpt_set:
                checkpoint()
        record_status("completed")
        log.info(
            "completed %d steps in %.1f s: train loss %.4g, test loss %.4g, test accuracy %.4f",
            step,
            wall(),
            last["train"],
            last["test"],
            last["test_acc"],
        )
        return TrainResult(
            "completed", step, plan.total_steps, wall(), last["train"], last["test"], last["test_acc"]
        )
    except BaseException as exc:
        reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"{type(exc).__name__}: {exc}"
        record_status("failed", error=reason.splitlines()[0] if reason else reason)
        raise
    finally:
        bar.close()
        metrics.close()


def _as_plain(cfg: s.TrainConfig) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True, enum_to_str=True)
