"""Typed configuration schemas, registered with Hydra's ConfigStore.

Every config group option (``conf/<group>/<name>.yaml``) extends one of these dataclasses, so a typo
in a key or a value of the wrong type fails at composition. Value checks that types cannot express
(a negative learning rate, an empty width list) live in ``__post_init__`` and run when the composed
config is turned into objects by :func:`hessdyn.config.to_object`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from omegaconf import MISSING

from hessdyn.config.errors import ConfigValueError
from hessdyn.config.flat_minima import ASAM_ETA, check_hsr_beta, check_regularizer, check_sam


class Activation(str, Enum):
    relu = "relu"
    tanh = "tanh"
    gelu = "gelu"
    softplus = "softplus"
    sigmoid = "sigmoid"


class SmoothActivation(str, Enum):
    sigmoid = "sigmoid"
    tanh = "tanh"
    softplus = "softplus"


class Norm(str, Enum):
    batchnorm = "batchnorm"
    shifted_relu = "shifted_relu"


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class DType(str, Enum):
    float32 = "float32"
    float64 = "float64"


class CheckpointSchedule(str, Enum):
    every = "every"
    log = "log"
    list = "list"


class SyntheticKind(str, Enum):
    gaussian_mixture = "gaussian_mixture"
    teacher = "teacher"


def reject_non_finite(node: Any, path: str = "") -> None:
    """Refuse NaN and ±inf in every numeric setting of a composed config (a DictConfig tree), once for all
    keys: they pass the comparisons the schemas' checks make (``nan > 0`` is False, ``inf > 0`` True), so
    ``optimizer.lr=nan`` would start a run that diverges at its first step and ``analysis.tol=nan`` one
    that never converges."""
    from omegaconf import DictConfig, ListConfig

    items: list[tuple[str | int, str]]
    if isinstance(node, DictConfig):
        items = [(str(k), f"{path}.{k!s}" if path else str(k)) for k in node.keys()]
    elif isinstance(node, ListConfig):
        items = [(i, f"{path}[{i}]") for i in range(len(node))]
    else:
        return
    for key, where in items:
        try:
            value = node[key]
        except Exception:  # noqa: BLE001 - a missing value or an interpolation: the schema reports it
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigValueError(where, f"must be a finite number, got {value}")
        reject_non_finite(value, where)


def _positive(value: float | int | None, key: str, allow_none: bool = False, strict: bool = True) -> None:
    if value is None:
        if not allow_none:
            raise ConfigValueError(key, "must be set")
        return
    if (strict and value <= 0) or (not strict and value < 0):
        raise ConfigValueError(key, f"must be {'>' if strict else '>='} 0, got {value}")


def _fraction(value: float, key: str) -> None:
    if not 0.0 <= value <= 1.0:
        raise ConfigValueError(key, f"must be in [0, 1], got {value}")


# --------------------------------------------------------------------------------------------- models
@dataclass
class ModelConfig:
    name: str = MISSING


@dataclass
class MLPConfig(ModelConfig):
    """Fully connected net: input (flattened) -> widths... -> classes."""

    name: str = "mlp"
    widths: list[int] = field(default_factory=lambda: [64, 64])
    activation: Activation = Activation.relu
    bias: bool = True
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if any(w <= 0 for w in self.widths):
            raise ConfigValueError("model.widths", f"every width must be > 0, got {list(self.widths)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigValueError("model.dropout", f"must be in [0, 1), got {self.dropout}")


@dataclass
class ThreeLayerConfig(ModelConfig):
    """input -> hidden -> output with a smooth activation (the Wolkowicz–Styan / HSR net)."""

    name: str = "three_layer"
    hidden: int = 64
    activation: SmoothActivation = SmoothActivation.sigmoid
    bias: bool = True

    def __post_init__(self) -> None:
        _positive(self.hidden, "model.hidden")


@dataclass
class WideResNetConfig(ModelConfig):
    """WRN-depth-width for 32x32 images (pre-activation blocks)."""

    name: str = "wide_resnet"
    depth: int = 20  # (depth - 2) / 6 blocks per stage, as in McDonnell et al. 2019 (20-10)
    width: int = 4
    norm: Norm = Norm.batchnorm
    binary_weights: bool = False
    temperature: float = 1.0
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.depth < 8 or (self.depth - 2) % 6 != 0:
            raise ConfigValueError(
                "model.depth", f"must be 6n+2 with n >= 1 (8, 14, 20, 26, ...), got {self.depth}"
            )
        _positive(self.width, "model.width")
        _positive(self.temperature, "model.temperature")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigValueError("model.dropout", f"must be in [0, 1), got {self.dropout}")


# ------------------------------------------------------------------------------------------- datasets
@dataclass
class DatasetConfig:
    name: str = MISSING
    n_train: int | None = None  # seeded subset of the training split; null = all
    n_test: int | None = None
    subset_seed: int = 0  # fixed across training seeds: seeds vary init and order, not data
    normalize: bool = True
    # fraction of training labels redrawn uniformly at random (seeded by the data seed; test labels stay true)
    random_label_fraction: float = 0.0

    def __post_init__(self) -> None:
        _positive(self.n_train, "dataset.n_train", allow_none=True)
        _positive(self.n_test, "dataset.n_test", allow_none=True)
        _fraction(self.random_label_fraction, "dataset.random_label_fraction")


@dataclass
class DigitsConfig(DatasetConfig):
    """scikit-learn's real 8x8 digits (1,797 images), bundled: needs no files or network."""

    name: str = "digits"
    test_fraction: float = 0.25
    split_seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigValueError("dataset.test_fraction", f"must be in (0, 1), got {self.test_fraction}")


@dataclass
class SyntheticConfig(DatasetConfig):
    """Gaussian-mixture or teacher-network classification, generated from ``data_seed``."""

    name: str = "synthetic"
    kind: SyntheticKind = SyntheticKind.gaussian_mixture
    n_train: int | None = 1024
    n_test: int | None = 512
    dim: int = 20
    num_classes: int = 4
    separation: float = 2.0  # distance scale of mixture means relative to unit within-class noise
    teacher_width: int = 32
    # the former name of random_label_fraction, read as it (runs written before the rename keep loading and
    # keep their config hash); set random_label_fraction instead
    label_noise: float = 0.0
    data_seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_train is None or self.n_test is None:
            raise ConfigValueError("dataset.n_train", "synthetic data needs explicit n_train and n_test")
        _positive(self.dim, "dataset.dim")
        if self.num_classes < 2:
            raise ConfigValueError("dataset.num_classes", f"must be >= 2, got {self.num_classes}")
        _positive(self.teacher_width, "dataset.teacher_width")
        _positive(self.separation, "dataset.separation", strict=False)
        _fraction(self.label_noise, "dataset.label_noise")
        if self.label_noise != 0.0 and self.random_label_fraction not in (0.0, self.label_noise):
            raise ConfigValueError(
                "dataset.label_noise",
                "is the former name of dataset.random_label_fraction and both are set; "
                "keep only dataset.random_label_fraction",
            )


@dataclass
class VisionConfig(DatasetConfig):
    """torchvision datasets read from a data root (``root``, else $HESSDYN_DATA, else the user cache)."""

    root: str | None = None
    download: bool = False
    augment: bool = False  # random crop + horizontal flip; CIFAR only


@dataclass
class MNISTConfig(VisionConfig):
    name: str = "mnist"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.augment:
            raise ConfigValueError(
                "dataset.augment", "augmentation is implemented for CIFAR only; set it to false"
            )


@dataclass
class FashionMNISTConfig(MNISTConfig):
    name: str = "fashion_mnist"


@dataclass
class CIFAR10Config(VisionConfig):
    name: str = "cifar10"


@dataclass
class CIFAR100Config(VisionConfig):
    name: str = "cifar100"


# ----------------------------------------------------------------------------------------- optimizers
@dataclass
class OptimizerConfig:
    name: str = MISSING
    lr: float = 0.1
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        _positive(self.lr, "optimizer.lr")
        _positive(self.weight_decay, "optimizer.weight_decay", strict=False)


@dataclass
class SGDConfig(OptimizerConfig):
    name: str = "sgd"


@dataclass
class MomentumConfig(OptimizerConfig):
    name: str = "momentum"
    momentum: float = 0.9
    nesterov: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.momentum < 1.0:
            raise ConfigValueError("optimizer.momentum", f"must be in [0, 1), got {self.momentum}")
        if self.nesterov and self.momentum == 0.0:
            raise ConfigValueError(
                "optimizer.nesterov", "Nesterov momentum needs optimizer.momentum > 0; set one or the other"
            )


@dataclass
class AdamConfig(OptimizerConfig):
    name: str = "adam"
    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("beta1", "beta2"):
            if not 0.0 <= getattr(self, key) < 1.0:
                raise ConfigValueError(f"optimizer.{key}", f"must be in [0, 1), got {getattr(self, key)}")
        _positive(self.eps, "optimizer.eps")


@dataclass
class AdamWConfig(AdamConfig):
    name: str = "adamw"
    weight_decay: float = 0.01


@dataclass
class RMSpropConfig(OptimizerConfig):
    name: str = "rmsprop"
    lr: float = 1e-3
    alpha: float = 0.99
    eps: float = 1e-8
    momentum: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.alpha < 1.0:
            raise ConfigValueError("optimizer.alpha", f"must be in [0, 1), got {self.alpha}")
        if not 0.0 <= self.momentum < 1.0:
            raise ConfigValueError("optimizer.momentum", f"must be in [0, 1), got {self.momentum}")
        _positive(self.eps, "optimizer.eps")


class SAMBase(str, Enum):
    sgd = "sgd"
    momentum = "momentum"
    adam = "adam"


@dataclass
class SAMConfig(OptimizerConfig):
    """SAM (Foret et al. 2021) or ASAM (Kwon et al. 2021, ``adaptive``) around ``base``; two passes per step.

    ``lr`` and ``weight_decay`` are the base's; ``momentum``/``nesterov`` apply to base=momentum and
    ``beta1``/``beta2``/``eps`` to base=adam (the others are ignored). ``rho``: the radius of the
    perturbation (in θ units; for ASAM in units of |θ| + ``eta``). See hessdyn.training.sam.
    """

    name: str = "sam"
    base: SAMBase = SAMBase.sgd
    rho: float = 0.05
    adaptive: bool = False
    eta: float = ASAM_ETA
    momentum: float = 0.9
    nesterov: bool = False
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8

    def __post_init__(self) -> None:
        super().__post_init__()
        check_sam(self.rho, self.base.value, self.eta)
        self.base_config()  # the base's own value checks (momentum, betas, eps), under the same keys

    def base_config(self) -> OptimizerConfig:
        """The typed config of the base optimizer, with this config's lr, weight decay and base keys."""
        lr, wd = self.lr, self.weight_decay
        if self.base == SAMBase.momentum:
            return MomentumConfig(lr=lr, weight_decay=wd, momentum=self.momentum, nesterov=self.nesterov)
        if self.base == SAMBase.adam:
            return AdamConfig(lr=lr, weight_decay=wd, beta1=self.beta1, beta2=self.beta2, eps=self.eps)
        return SGDConfig(lr=lr, weight_decay=wd)


# ---------------------------------------------------------------------------------------- regularizers
@dataclass
class RegularizerConfig:
    """A penalty added to the training loss (the analysis still measures the Hessian of the data loss)."""

    name: str = MISSING
    beta: float = 0.0  # weight of the penalty; 0 for none (kept so a report can group by regularizer.beta)


@dataclass
class NoRegularizerConfig(RegularizerConfig):
    """The data loss alone."""

    name: str = "none"

    def __post_init__(self) -> None:
        if self.beta != 0.0:
            raise ConfigValueError(
                "regularizer.beta",
                f"regularizer=none has no penalty to weigh (beta must stay 0), got {self.beta}; "
                "use regularizer=hsr regularizer.beta=...",
            )


@dataclass
class HSRConfig(RegularizerConfig):
    """HSR (Omae et al. 2026): β·U_WS, the exact Wolkowicz–Styan bound of the minibatch Hessian
    (model=three_layer with a smooth activation only; see hessdyn.training.hsr)."""

    name: str = "hsr"
    beta: float = 0.01

    def __post_init__(self) -> None:
        check_hsr_beta(self.beta)  # the model it needs is checked with the model (TrainConfig)


# ------------------------------------------------------------------------------------------ schedules
@dataclass
class ScheduleConfig:
    """Learning-rate multiplier over optimizer steps; ``warmup_steps`` ramps linearly from 0."""

    name: str = MISSING
    warmup_steps: int = 0

    def __post_init__(self) -> None:
        _positive(self.warmup_steps, "schedule.warmup_steps", strict=False)


@dataclass
class ConstantScheduleConfig(ScheduleConfig):
    name: str = "constant"


@dataclass
class CosineScheduleConfig(ScheduleConfig):
    name: str = "cosine"
    min_lr_ratio: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _fraction(self.min_lr_ratio, "schedule.min_lr_ratio")


@dataclass
class StepScheduleConfig(ScheduleConfig):
    name: str = "step"
    milestones: list[int] = field(default_factory=lambda: [])  # steps; empty = every `step_size` steps
    step_size: int = 1000
    gamma: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive(self.step_size, "schedule.step_size")
        _positive(self.gamma, "schedule.gamma")
        if any(m <= 0 for m in self.milestones):
            raise ConfigValueError(
                "schedule.milestones", f"must be positive steps, got {list(self.milestones)}"
            )


# ------------------------------------------------------------------------------- trainer, checkpoints
@dataclass
class SharpnessConfig:
    """The training-time sharpness probe (``trainer.sharpness``): top-k Hessian eigenvalues of the training
    loss on a fixed probe set every ``every`` steps, each probe warm-started from the previous one's
    vectors; rows go to ``metrics/sharpness.csv`` (hessdyn.training.sharpness_probe)."""

    every: int | None = None  # probe every N steps (steps 0, N, 2N, ...); null = off
    top_k: int = 1  # eigenpairs per probe (1 = λmax)
    set: int | None = (
        None  # probe set: a seeded subset of N training examples; null = the whole training split
    )
    set_seed: int = 0  # seed of the probe-set draw (fixed across training seeds, like dataset.subset_seed)
    preconditioned: bool = False  # Adam/AdamW/RMSprop: also λmax of P^-1/2 H P^-1/2 (Cohen et al. 2022)
    tol: float = 1e-3  # relative residual ||Hv - λv|| <= tol·|λ1|, as analysis.tol
    max_hvps: int | None = None  # product budget per probe and operator; null = 100·top_k + 500
    guard_steps: int = 0  # Lanczos steps from a fresh random vector after convergence (see the README)

    def __post_init__(self) -> None:
        if self.every is not None and self.every <= 0:
            raise ConfigValueError(
                "trainer.sharpness.every", f"must be > 0 steps (null turns the probe off), got {self.every}"
            )
        _positive(self.top_k, "trainer.sharpness.top_k")
        _positive(self.set, "trainer.sharpness.set", allow_none=True)
        _positive(self.tol, "trainer.sharpness.tol")
        _positive(self.guard_steps, "trainer.sharpness.guard_steps", strict=False)
        if self.max_hvps is not None and self.max_hvps < self.top_k:
            raise ConfigValueError(
                "trainer.sharpness.max_hvps",
                f"must be >= trainer.sharpness.top_k = {self.top_k}, got {self.max_hvps}",
            )

    @property
    def enabled(self) -> bool:
        return self.every is not None


@dataclass
class TrainerConfig:
    max_steps: int | None = 500  # optimizer steps; set null and use `epochs` instead if preferred
    epochs: float | None = None  # used when max_steps is null (fractional epochs allowed)
    batch_size: int | None = 128  # null = full batch (gradient descent)
    log_every: int = 10  # steps between train-metric rows
    eval_every: int = 100  # steps between test-split evaluations (also at every checkpoint)
    eval_batch_size: int = 2048
    grad_clip: float | None = None  # max global gradient norm; null = off
    stop_at_train_loss: float | None = (
        None  # stop once the full training-set loss (eval) is <= this; null = off
    )
    progress: bool | None = None  # progress bar; null = only when stderr is a terminal
    sharpness: SharpnessConfig = field(default_factory=SharpnessConfig)

    def __post_init__(self) -> None:
        if self.max_steps is None and self.epochs is None:
            raise ConfigValueError("trainer.max_steps", "set trainer.max_steps or trainer.epochs")
        if self.max_steps is not None and self.epochs is not None:
            raise ConfigValueError(
                "trainer.epochs", "set only one of trainer.max_steps and trainer.epochs (the other to null)"
            )
        _positive(self.max_steps, "trainer.max_steps", allow_none=True)
        _positive(self.epochs, "trainer.epochs", allow_none=True)
        _positive(self.batch_size, "trainer.batch_size", allow_none=True)
        _positive(self.log_every, "trainer.log_every")
        _positive(self.eval_every, "trainer.eval_every")
        _positive(self.eval_batch_size, "trainer.eval_batch_size")
        _positive(self.grad_clip, "trainer.grad_clip", allow_none=True)
        _positive(self.stop_at_train_loss, "trainer.stop_at_train_loss", allow_none=True)


@dataclass
class CheckpointConfig:
    """Which steps get a checkpoint; step 0 and the last step always do."""

    schedule: CheckpointSchedule = CheckpointSchedule.log
    every: int = 100  # schedule=every
    num: int = 20  # schedule=log: about this many log-spaced steps (distinct integers)
    steps: list[int] = field(default_factory=lambda: [])  # schedule=list

    def __post_init__(self) -> None:
        _positive(self.every, "checkpoint.every")
        _positive(self.num, "checkpoint.num")
        if any(s < 0 for s in self.steps):
            raise ConfigValueError("checkpoint.steps", f"must be >= 0, got {list(self.steps)}")
        if self.schedule == CheckpointSchedule.list and not self.steps:
            raise ConfigValueError(
                "checkpoint.steps", "checkpoint.schedule=list needs checkpoint.steps=[...]"
            )


# ------------------------------------------------------------------------------------------ analysis
class Curvature(str, Enum):
    hessian = "hessian"
    ggn = "ggn"


class Solver(str, Enum):
    auto = "auto"
    lanczos = "lanczos"
    block = "block"
    dense = "dense"


class BatchNormMode(str, Enum):
    eval = "eval"  # running statistics
    train = "train"  # batch statistics of the Hessian set's batches


class CheckpointSelection(str, Enum):
    all = "all"
    every = "every"
    list = "list"


class MetricGroup(str, Enum):
    spectrum = "spectrum"  # top-k eigenpairs (always on: everything else uses them)
    bottom = "bottom"  # smallest eigenvalues (negative curvature)
    trace = "trace"  # tr(H), tr(H^2), Wolkowicz-Styan bound
    density = "density"  # stochastic Lanczos quadrature
    trajectory = "trajectory"  # displacement, subspace overlap, aging
    localization = "localization"  # IPR, layer mass, null models
    alignment = "alignment"  # gradient / update alignment with the top eigenspace
    optimizer = "optimizer"  # eta*lambda_max, Adam's preconditioned Hessian
    reparam = "reparam"  # Dinh et al. alpha-rescaling (ReLU MLPs only)
    noise = "noise"  # per-example gradient covariance C and second moment M against the Hessian


class NoiseDiagonal(str, Enum):
    auto = "auto"  # exact when the model has at most analysis.noise_exact_params parameters, else bekas
    exact = "exact"  # diag(H) from P products (unit vectors), diag(C) from per-example gradients
    bekas = "bekas"  # diag(H) by Bekas et al.'s stochastic estimator, with standard errors


@dataclass
class AnalysisConfig:
    name: str = "default"
    top_k: int = 20
    bottom_k: int = 3
    hessian_set: int | None = 1000  # seeded subset of the training split; null = full training set
    hessian_set_seed: int = 0
    batch_size: int | None = None  # batch size of the Hessian-set pass; null = one batch
    tol: float = 1e-3  # relative residual ||Hv - lambda v|| <= tol * |lambda_1|
    max_hvps: int = 3000
    solver: Solver = Solver.auto
    curvature: Curvature = Curvature.hessian
    batchnorm: BatchNormMode = BatchNormMode.eval
    include_weight_decay: bool = False
    warm_start: bool = True
    checkpoints: CheckpointSelection = CheckpointSelection.all
    every: int = 1  # checkpoints=every: every n-th checkpoint (first and last always)
    steps: list[int] = field(default_factory=lambda: [])  # checkpoints=list
    metrics: list[MetricGroup] = field(
        default_factory=lambda: [
            MetricGroup.spectrum,
            MetricGroup.bottom,
            MetricGroup.trace,
            MetricGroup.trajectory,
            MetricGroup.localization,
            MetricGroup.alignment,
            MetricGroup.optimizer,
        ]
    )
    trace_hvps: int = 90  # HVP budget of each Hutch++ estimate (tr H and tr H^2)
    density_probes: int = 5
    density_steps: int = 60
    density_sigma: float = 0.0  # Gaussian broadening; 0 = automatic from the spectrum's range
    # near-degenerate eigenvalues (compared as one subspace): relative gap to the neighbour, and the cluster's
    # spread, both <= cluster_rtol * max|lambda| of the pair / the cluster (trajectory.degenerate_clusters)
    cluster_rtol: float = 1e-3
    null_random_vectors: int = 200
    null_init_seeds: int = 3  # architecture-induced null: top eigenvectors at random init
    reparam_alphas: list[float] = field(default_factory=lambda: [0.1, 0.3, 1.0, 3.0, 10.0])
    eps_sharpness: float = 1e-3
    # noise group (off by default: see docs/measurements.md for its cost)
    noise_top_k: int | None = None  # top eigenpairs of C and M (<= top_k); null = top_k
    noise_diagonal: NoiseDiagonal = NoiseDiagonal.auto  # how diag(H) for the power-law fit is computed
    noise_exact_params: int = 1024  # noise_diagonal=auto: exact up to this many parameters (P products)
    noise_probes: int = 100  # Rademacher probes of the Bekas estimate of diag(H)
    seed: int = 0
    device: Device = Device.auto
    dtype: DType = DType.float64
    # split every curvature product over the ranks of a torchrun / SLURM-tasks launch (docs/distributed.md)
    distributed: bool = False

    def __post_init__(self) -> None:
        _positive(self.top_k, "analysis.top_k")
        _positive(self.bottom_k, "analysis.bottom_k", strict=False)
        _positive(self.hessian_set, "analysis.hessian_set", allow_none=True)
        _positive(self.batch_size, "analysis.batch_size", allow_none=True)
        _positive(self.tol, "analysis.tol")
        _positive(self.max_hvps, "analysis.max_hvps")
        if self.max_hvps < max(self.top_k, self.bottom_k):
            raise ConfigValueError(
                "analysis.max_hvps",
                f"must be >= analysis.top_k and analysis.bottom_k (one product per wanted eigenpair at "
                f"least), got {self.max_hvps} for top_k={self.top_k}, bottom_k={self.bottom_k}",
            )
        _positive(self.every, "analysis.every")
        _positive(self.trace_hvps, "analysis.trace_hvps")
        _positive(self.density_probes, "analysis.density_probes")
        _positive(self.density_steps, "analysis.density_steps")
        _positive(self.density_sigma, "analysis.density_sigma", strict=False)
        _positive(self.cluster_rtol, "analysis.cluster_rtol", strict=False)
        _positive(self.null_random_vectors, "analysis.null_random_vectors", strict=False)
        _positive(self.null_init_seeds, "analysis.null_init_seeds", strict=False)
        _positive(self.eps_sharpness, "analysis.eps_sharpness")
        _positive(self.noise_top_k, "analysis.noise_top_k", allow_none=True)
        if self.noise_top_k is not None and self.noise_top_k > self.top_k:
            raise ConfigValueError(
                "analysis.noise_top_k",
                f"must be <= analysis.top_k={self.top_k} (it is compared with the top-k of H), got {self.noise_top_k}",
            )
        _positive(self.noise_exact_params, "analysis.noise_exact_params", strict=False)
        if self.noise_probes < 2:
            raise ConfigValueError(
                "analysis.noise_probes", f"must be >= 2 (for a standard error), got {self.noise_probes}"
            )
        not_distributed = [m.value for m in (MetricGroup.noise, MetricGroup.reparam) if m in self.metrics]
        if self.distributed and not_distributed:
            raise ConfigValueError(
                "analysis.distributed",
                f"the metric group(s) {', '.join(not_distributed)} need per-example gradients or losses at "
                "moved parameters, which are not split over ranks: drop them from analysis.metrics or run "
                "them in one process",
            )
        if MetricGroup.noise in self.metrics and self.batchnorm == BatchNormMode.train:
            raise ConfigValueError(
                "analysis.batchnorm",
                "the noise metric group needs per-example gradients, which batch statistics do not have "
                "(each example's loss depends on its batch); set analysis.batchnorm=eval or drop noise "
                "from analysis.metrics",
            )
        if any(a <= 0 for a in self.reparam_alphas):
            raise ConfigValueError(
                "analysis.reparam_alphas", f"must all be > 0, got {list(self.reparam_alphas)}"
            )
        if self.checkpoints == CheckpointSelection.list and not self.steps:
            raise ConfigValueError("analysis.steps", "analysis.checkpoints=list needs analysis.steps=[...]")


# -------------------------------------------------------------------------------------------- report
@dataclass
class ReportConfig:
    group_by: str = (
        "optimizer"  # a config key of the runs: a group choice (optimizer) or a key (optimizer.lr)
    )
    formats: list[str] = field(default_factory=lambda: ["png"])  # png, svg, pdf
    log_x: bool = False  # log-scaled step axis
    band: float = 0.95  # confidence level of the band over seeds
    top_ranks: int = 5  # eigenvalue curves / IPR curves drawn for ranks 1..top_ranks
    density_snapshots: int = 4
    batch_curves: bool = True  # also draw the minibatch running-mean loss/accuracy as thin lines
    analysis_name: str = "default"  # which analysis to read: analysis/ (default) or analysis-<name>/

    def __post_init__(self) -> None:
        allowed = {"png", "svg", "pdf"}
        bad = [f for f in self.formats if f not in allowed]
        if bad or "png" not in self.formats:
            raise ConfigValueError(
                "report.formats", f"choose from {sorted(allowed)} and keep png, got {list(self.formats)}"
            )
        if not 0.0 < self.band < 1.0:
            raise ConfigValueError("report.band", f"must be in (0, 1), got {self.band}")
        _positive(self.top_ranks, "report.top_ranks")
        _positive(self.density_snapshots, "report.density_snapshots", strict=False)


# ------------------------------------------------------------------------------------------- runtime
@dataclass
class RuntimeConfig:
    """How a process uses the machine (never what it computes: not part of a run's name or hash)."""

    threads: str = "auto"  # auto (usable CPUs / parallel jobs, 1 for tiny models) or a positive integer
    oversubscribe: bool = False  # allow runtime.threads above the CPUs this process may use (warned)

    def __post_init__(self) -> None:
        from hessdyn.threads import parse_setting

        parse_setting(self.threads)


# -------------------------------------------------------------------------------------- primary configs
@dataclass
class TrainConfig:
    """Primary config of ``hessdyn train`` (and of the ``hessdyn run`` pipeline)."""

    model: Any = MISSING
    dataset: Any = MISSING
    optimizer: Any = MISSING
    schedule: Any = MISSING
    regularizer: Any = MISSING
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    name: str = "default"  # experiment name: runs go to ${out_dir}/${name}/<overrides>
    out_dir: str = "results"
    seed: int = 0
    device: Device = Device.auto
    dtype: DType = DType.float32
    deterministic: bool = True  # torch.use_deterministic_algorithms (bit-identical CPU reruns)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    def __post_init__(self) -> None:
        # cross-group: a regularizer that exists for some models only (runs before anything is written)
        reg, model = self.regularizer, self.model
        if isinstance(reg, RegularizerConfig) and isinstance(model, ModelConfig):
            activation = getattr(model, "activation", None)
            check_regularizer(reg.name, reg.beta, model.name, getattr(activation, "value", activation))


@dataclass
class AnalyzeConfig:
    """Primary config of ``hessdyn analyze``."""

    run_dir: str | None = None
    sweep_dir: str | None = None
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    data_root: str | None = (
        None  # where the run's dataset lives now (default: the run's dataset.root, $HESSDYN_DATA)
    )
    settings_from_run: bool = (
        False  # use each run's own `analysis` section (set by its experiment), not analysis.*
    )
    force: bool = False  # recompute checkpoints already analyzed with this exact analysis config
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)


@dataclass
class ReportCommandConfig:
    """Primary config of ``hessdyn report``."""

    sweep_dir: str | None = None
    run_dirs: list[str] = field(default_factory=lambda: [])
    out: str | None = None  # default: SWEEP_DIR/report (or the first run's parent /report)
    report: ReportConfig = field(default_factory=ReportConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
