"""The training objective of one minibatch: the data loss (mean cross-entropy), plus a regularizer's penalty.

One call of :meth:`TrainingObjective.backward` is one forward/backward pass: it fills ``.grad`` with the
gradient of ``data loss + penalty`` (clipped when ``trainer.grad_clip`` is set) and returns the numbers the
metrics log keeps apart, so train.csv's ``loss`` is always the data loss. SAM calls it twice per step
(at w and at w + ε); every other optimizer once.

With ``regularizer=hsr`` the penalty is ``β·U_WS`` of the minibatch (:func:`hessdyn.training.hsr.hsr_penalty`),
whose forward pass also gives the logits, so the data loss shares it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from hessdyn.config import schema as s
from hessdyn.config.errors import ConfigValueError
from hessdyn.training.hsr import hsr_penalty


@dataclass(frozen=True)
class BatchTerms:
    """One pass on a minibatch of B examples. ``loss``: the data loss (mean cross-entropy, L);
    ``correct``: correct argmax predictions; ``penalty``: β·U_WS (L) and ``bound``: U_WS (L/θ²) of the
    minibatch Hessian with ``regularizer=hsr``, else None."""

    loss: float
    correct: int
    penalty: float | None = None
    bound: float | None = None

    @property
    def finite(self) -> bool:
        return all(math.isfinite(v) for v in (self.loss, self.penalty or 0.0, self.bound or 0.0))

    @property
    def total(self) -> float:
        """The training objective's value: data loss + penalty."""
        return self.loss + (self.penalty or 0.0)


# HSR's closed form holds a few B × B matrices per step (at 4,096 examples ~70 MB each in float32).
HSR_MAX_BATCH = 4096


class TrainingObjective:
    """Forward and backward passes of ``model`` on minibatches of up to ``batch_size`` examples, for the
    configured regularizer. Raises ConfigValueError for an HSR batch above :data:`HSR_MAX_BATCH`."""

    def __init__(
        self, model: nn.Module, regularizer: s.RegularizerConfig, grad_clip: float | None, batch_size: int
    ) -> None:
        self.model = model
        self.beta = float(regularizer.beta) if isinstance(regularizer, s.HSRConfig) else None
        self.grad_clip = grad_clip
        if self.beta is not None and batch_size > HSR_MAX_BATCH:
            raise ConfigValueError(
                "trainer.batch_size",
                f"regularizer=hsr forms batch × batch matrices; a batch of {batch_size} examples is above "
                f"{HSR_MAX_BATCH}: set trainer.batch_size <= {HSR_MAX_BATCH}",
            )

    @property
    def regularized(self) -> bool:
        return self.beta is not None

    def backward(self, xb: torch.Tensor, yb: torch.Tensor) -> BatchTerms:
        """Accumulate ∇(data loss + penalty) into ``.grad`` (the caller zeroes it) and clip it."""
        if self.beta is None:
            logits = self.model(xb)
            loss = F.cross_entropy(logits, yb)
            loss.backward()
            terms = BatchTerms(float(loss.detach()), self._correct(logits, yb))
        else:
            term = hsr_penalty(self.model, xb, yb, self.beta)
            loss = F.cross_entropy(term.logits, yb)
            (loss + term.penalty).backward()
            terms = BatchTerms(
                float(loss.detach()),
                self._correct(term.logits, yb),
                float(term.penalty.detach()),
                float(term.bound.detach()),
            )
        if self.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        return terms

    @staticmethod
    def _correct(logits: torch.Tensor, yb: torch.Tensor) -> int:
        return int((logits.detach().argmax(dim=1) == yb).sum())
