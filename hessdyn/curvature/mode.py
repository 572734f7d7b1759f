"""The Hessian mode: which network behaviour and which objective the curvature is taken of."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class HessianMode:
    """How the network is evaluated while curvature is computed; recorded next to every result.

    batchnorm: "eval" normalizes with the running statistics (the Hessian of a fixed function, independent
        of the batch size); "train" normalizes with the statistics of each batch (the function training saw;
        depends on how the Hessian set is batched). Running statistics are never updated either way.
    dropout: must be False. Dropout makes the loss random, so its Hessian is not defined; the field exists
        so the choice is written down.
    weight_decay: coefficient c of the L2 term (c/2)·||θ_decayed||²; its Hessian c·I (restricted to the
        decayed parameters) and gradient c·θ are added. 0 means the bare data loss.
    decayed: names or module prefixes of the decayed parameters; None means every selected parameter.
    """

    batchnorm: Literal["eval", "train"] = "eval"
    dropout: bool = False
    weight_decay: float = 0.0
    decayed: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.batchnorm not in ("eval", "train"):
            raise ValueError(f"batchnorm must be 'eval' or 'train', got {self.batchnorm!r}")
        if self.dropout:
            raise ValueError(
                "dropout=True is not supported: a loss with dropout is random and has no Hessian"
            )
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.decayed is not None:
            object.__setattr__(self, "decayed", tuple(self.decayed))

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for analysis.json."""
        return asdict(self)
