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
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import tqdm

from hessdyn import threads as thread_policy
from hessdyn.config import config_hash, hashable_config, plain_dict
from hessdyn.config import schema as s
from hessdyn.config.errors import HessdynError, interrupt_signal
from hessdyn.data import DatasetSplits, TensorSplit, load_dataset
from hessdyn.io import atomic_write_text
from hessdyn.models import build_model
from hessdyn.runtime import resolve_device, resolve_dtype, set_determinism
from hessdyn.store import RESUME_KEYS, DamagedFile, RunDir, RunStatus, load_checkpoint
from hessdyn.training.checkpoints import checkpoint_steps
from hessdyn.training.metrics_log import MetricsLog, logged_steps
from hessdyn.training.objective import BatchTerms, TrainingObjective
from hessdyn.training.optimizers import build_optimizer
from hessdyn.training.run_record import git_commit, versions
from hessdyn.training.sam import SAM
from hessdyn.training.schedules import lr_multiplier
from hessdyn.training.sharpness_probe import SharpnessProbe

log = logging.getLogger("hessdyn.train")

# Seed offsets keep the streams independent: init uses `seed`, batch order and augmentation their own.
_SAMPLER_SEED_OFFSET = 1_000_003
_AUGMENT_SEED_OFFSET = 2_000_003


@dataclass(frozen=True)
class TrainResult:
    status: str  # a RunStatus value: completed | diverged
    steps: int
    total_steps: int
    wall_s: float
    final_train_loss: float | None
    final_test_loss: float | None
    final_test_accuracy: float | None

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> TrainResult:
        """The result of a finished run, from its ``run.json``."""
        return cls(
            record["status"],
            record.get("steps", 0),
            record.get("total_steps", 0),
            record.get("wall_s", 0.0),
            record.get("final_train_loss"),
            record.get("final_test_loss"),
            record.get("final_test_accuracy"),
        )


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
    elif cfg.trainer.epochs is not None:
        total = max(1, math.ceil(float(cfg.trainer.epochs) * steps_per_epoch))
    else:  # the schema refuses this already
        raise HessdynError("set trainer.max_steps or trainer.epochs")
    return StepPlan(batch_size, steps_per_epoch, total, tuple(checkpoint_steps(cfg.checkpoint, total)))


@torch.inference_mode()
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


def global_norm(tensors: Iterable[torch.Tensor]) -> float:
    """Euclidean norm of the tensors taken as one vector: one reduction per tensor, combined in float64.

    No float64 copy or squared temporary of the parameters is made: at a few hundred thousand parameters
    those allocations cost as much as the reductions (issue 16, the training loop's overhead)."""
    norms = [torch.linalg.vector_norm(t.detach()).double() for t in tensors]
    return float(torch.linalg.vector_norm(torch.stack(norms))) if norms else 0.0


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


def _fresh_accumulators() -> dict[str, Any]:
    """Sums over the updates since the last batch row (the penalty's only with a regularizer)."""
    return {"loss": 0.0, "correct": 0, "count": 0, "penalty": 0.0, "bound": 0.0}


def _progress_enabled(setting: bool | None) -> bool:
    return sys.stderr.isatty() if setting is None else bool(setting)


def train(
    cfg: s.TrainConfig,
    run_dir: str | Path,
    data: DatasetSplits | None = None,
    threads: thread_policy.ThreadPolicy | None = None,
) -> TrainResult:
    """Train (or resume) the run in ``run_dir``; returns its final status.

    ``threads``: the process's thread policy (the CLI's), fitted to the model's size and applied; None keeps
    the caller's thread count. Either way run.json records it, and a resumed run keeps the count it
    started with (other counts may change the last bits of the results).

    Raises HessdynError when ``run_dir`` holds a run of another config, or another process is training
    in it.
    """
    run = RunDir(run_dir)
    run.path.mkdir(parents=True, exist_ok=True)
    with run.lock("hessdyn train"):
        return _train(cfg, run, data, threads)


def _train(
    cfg: s.TrainConfig, run: RunDir, data: DatasetSplits | None, threads: thread_policy.ThreadPolicy | None
) -> TrainResult:
    plain_cfg = hashable_config(plain_dict(cfg))
    chash = config_hash(plain_cfg)
    record = run.read_record()
    if record is not None and record.get("config_hash") != chash:
        raise HessdynError(
            f"{run.path} holds a run of another config (hash {record.get('config_hash')} != {chash}); "
            "choose another name=... or hydra.run.dir=..."
        )
    before = None
    if record is not None and RunStatus.parse(record.get("status")).finished:
        before = _repair_point(run, record)
        if before is None:
            log.info(
                "run in %s is already %s at step %s; nothing to do",
                run.path,
                record["status"],
                record.get("steps"),
            )
            return TrainResult.from_record(record)
    session = _Session(cfg, run, data, chash, plain_cfg, record, threads, before)
    return session.run()


def _repair_point(run: RunDir, record: dict[str, Any]) -> int | None:
    """A finished run whose files are incomplete is trained again from a checkpoint before the damage, which
    rewrites what is missing (bit for bit on the CPU): the step before which to resume (a missing
    checkpoint, or the end when ``metrics/train.csv`` lost rows), or None when nothing is missing."""
    missing = run.missing_checkpoints(record)
    if missing:
        log.warning(
            "%s is %s but checkpoints %s are missing: training again from the checkpoint before step %d to "
            "write them",
            run.path,
            record["status"],
            missing,
            missing[0],
        )
        return missing[0]
    expected = record.get("metrics_rows")
    if expected is not None and len(logged_steps(run.train_csv)) < expected:
        log.warning(
            "%s lost rows (%d of %d are intact): training again from the last checkpoint before the loss "
            "to write them",
            run.train_csv,
            len(logged_steps(run.train_csv)),
            expected,
        )
        return int(record.get("steps") or 0) + 1
    return None


class _Session:
    """One training process on one run folder: the model, optimizer, data order and bookkeeping, and the
    named steps of a run (resume, one update, log, evaluate, checkpoint, finish)."""

    def __init__(
        self,
        cfg: s.TrainConfig,
        run: RunDir,
        data: DatasetSplits | None,
        chash: str,
        plain_cfg: dict[str, Any],
        record: dict[str, Any] | None,
        threads: thread_policy.ThreadPolicy | None,
        before: int | None = None,
    ) -> None:
        self.cfg, self.run_dir, self.chash = cfg, run, chash
        self.device = resolve_device(cfg.device)
        self.dtype = resolve_dtype(cfg.dtype)
        set_determinism(cfg.deterministic, self.device)
        self.data = data or load_dataset(cfg.dataset, self.device, self.dtype)
        torch.manual_seed(cfg.seed)
        self.model = build_model(cfg.model, self.data.input_shape, self.data.num_classes).to(
            device=self.device, dtype=self.dtype
        )
        self.optimizer = build_optimizer(cfg.optimizer, self.model.parameters())
        self.plan = plan_steps(cfg, len(self.data.train))
        self.objective = TrainingObjective(
            self.model, cfg.regularizer, cfg.trainer.grad_clip, self.plan.batch_size
        )
        self.ckpt_set = set(self.plan.checkpoint_steps)
        self.sampler = _Sampler(len(self.data.train), self.plan.batch_size, cfg.seed + _SAMPLER_SEED_OFFSET)
        self.aug_gen = torch.Generator(device=self.device).manual_seed(cfg.seed + _AUGMENT_SEED_OFFSET)
        self.base_lrs = [g["lr"] for g in self.optimizer.param_groups]
        self.probe = SharpnessProbe.create(cfg, self.data.train, self.model, self.plan.batch_size)
        self.step, self.wall_before = 0, 0.0
        self.acc: dict[str, Any] = _fresh_accumulators()
        self._before: list[torch.Tensor] | None = None
        self.last: dict[str, float | None] = {"train": None, "test": None, "test_acc": None}
        self.resumed_from = resumed_from = self._resume(before)
        self.resumed = resumed_from is not None
        self.threads = self._thread_policy(threads, record, resumed_from)
        self._write_config_if_missing()
        self.metrics = MetricsLog(run.train_csv, resume_step=resumed_from)
        self.base_record = self._base_record(plain_cfg, record, resumed_from)
        if self.probe is not None:
            self.probe.open_table(run.sharpness_csv, resumed_from)
            self.base_record["sharpness"] = self.probe.provenance()
        self.t0 = time.perf_counter()

    # ------------------------------------------------------------------------------------- set up
    def _resume(self, before: int | None = None) -> int | None:
        """Continue from the last intact checkpoint (before step ``before`` when given), if any: weights,
        optimizer, RNG and sampler states.

        A checkpoint that fails its checks is set aside (renamed, never deleted) and an earlier one is
        used; so is an earlier one when ``metrics/train.csv`` lost rows up to a checkpoint's step. Training
        from there writes the missing files again (bit for bit on the CPU)."""
        self.run_dir.remove_stale_temporaries()
        logged = logged_steps(self.run_dir.train_csv)
        for step, path in reversed(self.run_dir.checkpoints()):
            if before is not None and step >= before:
                continue
            ckpt = self._intact_checkpoint(path, logged)
            if ckpt is not None:
                self._restore(ckpt, path)
                log.info(
                    "resuming %s from step %d of %d", self.run_dir.path, self.step, self.plan.total_steps
                )
                return self.step
        return None

    def _intact_checkpoint(self, path: Path, logged: list[int]) -> dict[str, Any] | None:
        """The checkpoint at ``path`` when it and the metrics rows up to its step are intact, else None."""
        try:
            ckpt = load_checkpoint(
                path, map_location=str(self.device), config_hash=self.chash, keys=RESUME_KEYS
            )
        except DamagedFile as exc:
            moved = self.run_dir.set_aside(path)
            log.warning(
                "%s is damaged (%s); set aside as %s, training resumes from an earlier checkpoint",
                path,
                exc.problem,
                moved.name,
            )
            return None
        expected = ckpt.get("metrics_rows")
        have = sum(1 for st in logged if st <= int(ckpt["step"]))
        if expected is not None and have < expected:
            log.warning(
                "%s lost rows up to step %d (%d of %d intact); training resumes from an earlier checkpoint "
                "to write them again",
                self.run_dir.train_csv,
                int(ckpt["step"]),
                have,
                expected,
            )
            return None
        return ckpt

    def _restore(self, ckpt: dict[str, Any], path: Path) -> None:
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        torch.set_rng_state(ckpt["rng"]["torch"].cpu())
        if self.device.type == "cuda" and "cuda" in ckpt["rng"]:
            torch.cuda.set_rng_state(ckpt["rng"]["cuda"].cpu(), self.device)
        self.aug_gen.set_state(ckpt["rng"]["augment"].cpu())
        self.sampler.load({k: (v.cpu() if torch.is_tensor(v) else v) for k, v in ckpt["sampler"].items()})
        self.acc = {**_fresh_accumulators(), **ckpt["accumulators"]}  # older checkpoints lack the penalty
        if self.probe is not None:
            self.probe.restore(ckpt.get("sharpness"), path)
        self.step = int(ckpt["step"])
        self.wall_before = float(ckpt.get("wall_s", 0.0))

    def _thread_policy(
        self,
        threads: thread_policy.ThreadPolicy | None,
        record: dict[str, Any] | None,
        resumed_from: int | None,
    ) -> thread_policy.ThreadPolicy:
        """The thread count of this session: the policy's, fitted to the model, unless the run resumes,
        which keeps the count it started with."""
        num_params = sum(p.numel() for p in self.model.parameters())
        policy = (
            thread_policy.fit_workload(threads, num_params) if threads else thread_policy.current_policy()
        )
        if resumed_from is not None:
            policy = thread_policy.check_resume((record or {}).get("threads"), policy)
            if policy.source == "resumed run":
                log.info("threads: %s", policy.note)
        if threads is not None or policy.source == "resumed run":
            thread_policy.apply(policy)
        return policy

    def _write_config_if_missing(self) -> None:
        """Called as a library, not through Hydra: keep the run self-describing."""
        if not self.run_dir.hydra_config.exists():
            from omegaconf import OmegaConf

            atomic_write_text(self.run_dir.hydra_config, OmegaConf.to_yaml(OmegaConf.structured(self.cfg)))

    def _base_record(
        self, plain_cfg: dict[str, Any], record: dict[str, Any] | None, resumed_from: int | None
    ) -> dict[str, Any]:
        data = self.data
        return {
            "config_hash": self.chash,
            "config": plain_cfg,
            "total_steps": self.plan.total_steps,
            "steps_per_epoch": self.plan.steps_per_epoch,
            "batch_size": self.plan.batch_size,
            "checkpoint_steps": list(self.plan.checkpoint_steps),
            "num_parameters": sum(p.numel() for p in self.model.parameters()),
            "dataset": {"name": data.name, "n_train": len(data.train), "n_test": len(data.test), **data.info},
            "device": str(self.device),
            "dtype": str(self.dtype).replace("torch.", ""),
            "threads": self.threads.to_dict(),
            "git_commit": git_commit(),
            "versions": versions(),
            "started": (record or {}).get("started", time.strftime("%Y-%m-%dT%H:%M:%S%z")),
            "resumes": (record or {}).get("resumes", [])
            + ([resumed_from] if resumed_from is not None else []),
        }

    # ------------------------------------------------------------------------------- bookkeeping
    def wall(self) -> float:
        return self.wall_before + time.perf_counter() - self.t0

    def lr_now(self) -> float:
        return self.base_lrs[0] * lr_multiplier(self.cfg.schedule, self.step, self.plan.total_steps)

    def result(self, status: RunStatus) -> TrainResult:
        return TrainResult(
            status.value,
            self.step,
            self.plan.total_steps,
            self.wall(),
            self.last["train"],
            self.last["test"],
            self.last["test_acc"],
        )

    def record_status(self, status: RunStatus, **extra: Any) -> None:
        self.metrics.flush()  # run.json counts the rows: they are in the file before it says so
        self.run_dir.write_record(
            {
                **self.base_record,
                "status": status.value,
                "steps": self.step,
                "wall_s": self.wall(),
                "final_train_loss": self.last["train"],
                "final_test_loss": self.last["test"],
                "final_test_accuracy": self.last["test_acc"],
                "metrics_rows": self.metrics.rows,
                **extra,
            }
        )

    def eval_rows(self) -> None:
        param_norm = global_norm(self.model.parameters())
        for split_name, split in (("train", self.data.train), ("test", self.data.test)):
            loss, accuracy = evaluate(self.model, split, self.cfg.trainer.eval_batch_size)
            self.metrics.write(
                step=self.step,
                epoch=self.step / self.plan.steps_per_epoch,
                split=split_name,
                source="eval",
                loss=loss,
                accuracy=accuracy,
                lr=self.lr_now(),
                param_norm=param_norm,
                wall_s=self.wall(),
            )
            if split_name == "train":
                self.last["train"] = loss
            else:
                self.last["test"], self.last["test_acc"] = loss, accuracy

    def probe_sharpness(self) -> None:
        """The sharpness probe at this step, when one is due (its rows and vectors are in by the checkpoint)."""
        if self.probe is not None:
            self.probe(self.step, self.model, self.optimizer, self.lr_now())

    def checkpoint(self) -> None:
        self.metrics.flush()
        rng = {"torch": torch.get_rng_state(), "augment": self.aug_gen.get_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        extra: dict[str, Any] = {}
        if self.probe is not None:
            self.probe.flush()
            extra["sharpness"] = self.probe.state()
        self.run_dir.save_checkpoint(
            {
                "step": self.step,
                "epoch": self.step / self.plan.steps_per_epoch,
                "config_hash": self.chash,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "rng": rng,
                "sampler": self.sampler.state(),
                "accumulators": dict(self.acc),
                "wall_s": self.wall(),
                "lr": self.lr_now(),
                "total_steps": self.plan.total_steps,
                **extra,
                "metrics_rows": self.metrics.rows,  # rows of metrics/train.csv up to this step
            }
        )

    # ---------------------------------------------------------------------------------- the run
    def run(self) -> TrainResult:
        self.record_status(RunStatus.RUNNING)
        self.model.train()
        bar = tqdm(
            total=self.plan.total_steps,
            initial=self.step,
            disable=not _progress_enabled(self.cfg.trainer.progress),
            desc=self.run_dir.path.name[:30],
            unit="step",
            dynamic_ncols=True,
        )
        try:
            if not self.resumed:  # step 0's rows and checkpoint (a run resumed at step 0 has them)
                self.eval_rows()
                self.probe_sharpness()
                self.checkpoint()
            while self.step < self.plan.total_steps:
                stopped = self._update(bar)
                if stopped is not None:
                    return stopped
            return self._finish()
        except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM: resumable from the last checkpoint
            self.metrics.flush()
            self.record_status(
                RunStatus.INTERRUPTED, error=f"interrupted by {interrupt_signal(exc)} at step {self.step}"
            )
            raise
        except BaseException as exc:
            reason = f"{type(exc).__name__}: {exc}"
            self.record_status(RunStatus.FAILED, error=reason.splitlines()[0])
            raise
        finally:
            bar.close()
            self.metrics.close()
            if self.probe is not None:
                self.probe.close()

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        train = self.data.train
        idx = self.sampler.next_indices()
        if idx is None:
            xb, yb = train.x, train.y
        else:
            idx = idx.to(train.x.device)
            xb, yb = train.x.index_select(0, idx), train.y.index_select(0, idx)
        if self.data.augment is not None:
            xb = self.data.augment(xb, self.aug_gen)
        return xb, yb

    def _update(self, bar: tqdm) -> TrainResult | None:
        """One optimizer update and what is due after it; a result when the run ends here."""
        step = self.step
        xb, yb = self._batch()
        self.optimizer.zero_grad(set_to_none=True)
        terms = self.objective.backward(xb, yb)
        if not terms.finite:
            return self._diverge(terms.total)
        log_due = (step + 1) % self.cfg.trainer.log_every == 0 or step + 1 == self.plan.total_steps
        if log_due:  # the gradient at w and the weights before the update
            grad_norm = global_norm(p.grad for p in self.model.parameters() if p.grad is not None)
            before = self._snapshot()
        mult = lr_multiplier(self.cfg.schedule, step, self.plan.total_steps)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base * mult
        self._optimizer_step(xb, yb)
        self._accumulate(terms, len(yb))
        self.step = step = step + 1
        bar.update(1)
        self.probe_sharpness()
        if log_due:
            self._log_batch(bar, grad_norm, before, self.base_lrs[0] * mult)
        if step % self.cfg.trainer.eval_every == 0 or step in self.ckpt_set:
            self.eval_rows()
            if self._reached_target():
                return self._stop_at_target()
        if step in self.ckpt_set:
            self.checkpoint()
        return None

    def _optimizer_step(self, xb: torch.Tensor, yb: torch.Tensor) -> None:
        """The update from the gradient now in ``.grad``; SAM first takes its second pass at w + ε."""
        if isinstance(self.optimizer, SAM):
            self.optimizer.perturb()
            self.optimizer.zero_grad(set_to_none=True)
            self.objective.backward(xb, yb)
            self.optimizer.restore_and_step()
        else:
            self.optimizer.step()

    def _accumulate(self, terms: BatchTerms, count: int) -> None:
        acc = self.acc
        acc["loss"] += terms.loss * count
        acc["correct"] += terms.correct
        acc["count"] += count
        if terms.penalty is not None and terms.bound is not None:
            acc["penalty"] += terms.penalty * count
            acc["bound"] += terms.bound * count

    def _snapshot(self) -> list[torch.Tensor]:
        """The parameters before an update, in buffers reused from one logged step to the next."""
        params = [p.detach() for p in self.model.parameters()]
        if self._before is None or any(b.shape != p.shape for b, p in zip(self._before, params, strict=True)):
            self._before = [p.clone() for p in params]
        else:
            for b, p in zip(self._before, params, strict=True):
                b.copy_(p)
        return self._before

    def _log_batch(self, bar: tqdm, grad_norm: float, before: list[torch.Tensor], lr: float) -> None:
        """The ``batch`` row: mean loss and accuracy of the updates since the previous row."""
        acc = self.acc
        for b, p in zip(before, self.model.parameters(), strict=True):
            b.sub_(p.detach())  # before - after, in the snapshot's own buffer
        update_norm = global_norm(before)
        batch_loss = acc["loss"] / acc["count"]
        regularized = self.objective.regularized
        self.metrics.write(
            step=self.step,
            epoch=self.step / self.plan.steps_per_epoch,
            split="train",
            source="batch",
            loss=batch_loss,
            accuracy=acc["correct"] / acc["count"],
            lr=lr,
            grad_norm=grad_norm,
            update_norm=update_norm,
            param_norm=global_norm(self.model.parameters()),
            wall_s=self.wall(),
            penalty=acc["penalty"] / acc["count"] if regularized else None,
            batch_ws_bound=acc["bound"] / acc["count"] if regularized else None,
        )
        bar.set_postfix(loss=f"{batch_loss:.4f}", acc=f"{acc['correct'] / acc['count']:.3f}")
        self.acc = _fresh_accumulators()

    def _reached_target(self) -> bool:
        target = self.cfg.trainer.stop_at_train_loss
        return target is not None and self.last["train"] is not None and self.last["train"] <= target

    def _stop_at_target(self) -> TrainResult:
        """Matched-loss comparisons: the run ends here, with a final checkpoint at this step."""
        target = self.cfg.trainer.stop_at_train_loss
        self.checkpoint()
        log.info("training loss %.4g <= %g at step %d: stopping", self.last["train"], target, self.step)
        self.record_status(RunStatus.COMPLETED, stopped_at_train_loss=target)
        return self.result(RunStatus.COMPLETED)

    def _diverge(self, loss_value: float) -> TrainResult:
        step = self.step
        log.warning(
            "loss is %s at step %d: run diverged; checkpoints up to step %d are kept",
            loss_value,
            step,
            max((c for c in self.ckpt_set if c <= step), default=0),
        )
        if not self.metrics.has_row(step, "train", "batch"):  # one row per (step, split, source)
            self.metrics.write(
                step=step,
                epoch=step / self.plan.steps_per_epoch,
                split="train",
                source="batch",
                loss=loss_value,
                lr=self.lr_now(),
                wall_s=self.wall(),
            )
        self.metrics.flush()
        self.record_status(RunStatus.DIVERGED, diverged_at_step=step)
        return self.result(RunStatus.DIVERGED)

    def _finish(self) -> TrainResult:
        self.record_status(RunStatus.COMPLETED)
        log.info(
            "completed %d steps in %.1f s: train loss %.4g, test loss %.4g, test accuracy %.4f",
            self.step,
            self.wall(),
            self.last["train"],
            self.last["test"],
            self.last["test_acc"],
        )
        return self.result(RunStatus.COMPLETED)
