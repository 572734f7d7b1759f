"""What a distributed analysis (``analysis.distributed``) checks before it starts: that the analysis splits
over the ranks with the same numbers as one process (docs/distributed.md)."""

from __future__ import annotations

from hessdyn.analysis.checkpoint import trained_hessian
from hessdyn.analysis.loading import RunContext
from hessdyn.config import schema as s
from hessdyn.config.errors import HessdynError
from hessdyn.curvature import has_batchnorm


def check_distributable(ctx: RunContext, settings: s.AnalysisConfig, world_size: int) -> None:
    """One line unless the analysis splits over ``world_size`` ranks: its metric groups are distributed,
    every rank gets at least one example, and for a batch-norm net whose Hessian takes batch statistics,
    whole batches (the single-process pass's), at least one each."""
    local = [m.value for m in (s.MetricGroup.noise, s.MetricGroup.reparam) if m in settings.metrics]
    if local:
        raise HessdynError(
            f"analysis.metrics: {', '.join(local)} need per-example gradients or losses at moved parameters, "
            f"which are not split over ranks: drop them or analyze {ctx.run_dir} in one process"
        )
    size = int(ctx.hessian_set.y.shape[0])
    if world_size > size:
        raise HessdynError(
            f"{world_size} ranks for a Hessian set of {size} examples: every rank needs a shard; raise "
            "analysis.hessian_set or start fewer ranks"
        )
    model = ctx.new_model()
    if not has_batchnorm(model):
        return
    batched = []
    if settings.batchnorm == s.BatchNormMode.train:
        batched.append(("analysis.batch_size", settings.batch_size))
    trained = trained_hessian(settings, ctx.config.optimizer, model, ctx.train_batch_size, size)
    if trained is not None:
        batched.append(("the training batch size (the stability columns' Hessian)", trained.batch_size))
    for what, batch in batched:
        units = -(-size // (batch or size))
        if units < world_size:
            raise HessdynError(
                f"batch norm takes batch statistics, so ranks hold whole batches of {what} ({batch or size}), "
                f"but the Hessian set of {size} has {units} batch(es) for {world_size} ranks: set "
                "analysis.batch_size so that there are at least as many batches as ranks, or use "
                "analysis.batchnorm=eval"
            )
