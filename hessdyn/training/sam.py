"""SAM (Foret et al., ICLR 2021) and ASAM (Kwon et al., ICML 2021) as a wrapper around a base optimizer.

One step on a minibatch loss L_B (Foret et al., Algorithm 1; Kwon et al., eq. for the adaptive ε):

    g = ∇L_B(w),   ε = ρ·g/||g||                        (SAM)
                   ε = ρ·T_w² g/||T_w g||,  T_w = |w| + η  (ASAM, element-wise, η = 0.01 by default)
    base optimizer update of w with the gradient ∇L_B(w + ε),

so every step costs two forward/backward passes. ε is taken over all parameters at once (one global norm);
the base optimizer (SGD, momentum or Adam, built by :func:`hessdyn.training.optimizers.build_optimizer`)
applies its own weight decay, momentum and learning rate at w, as in davda54/sam. Unlike davda54/sam
(which uses T_w = |w|), ASAM here keeps Kwon et al.'s offset η so a zero weight can still be perturbed;
``eta=0`` gives davda54's choice. Biases are normalized like weights, as in davda54/sam (Kwon et al.'s
code leaves parameters not named "weight" at T = 1; an optimizer sees tensors, not names).

Stability threshold: none is claimed, so the analysis leaves ``stability_threshold`` empty for SAM. On a
quadratic with curvature λ along the top eigenvector, *unnormalized* SAM (ε = ρg) is the linear map
1 − ηλ − ηρλ², stable iff ηλ(1 + ρλ) < 2, i.e. λ < (sqrt(1 + 8ρ/η) − 1)/(2ρ). SAM as implemented here
normalizes ε, so ρ becomes ρ/||g||: the same argument gives λ < (||g||/(2ρ))·(sqrt(1 + 8ρ/(η||g||)) − 1)
(the "SAM edge of stability" of Long & Bartlett, arXiv 2309.12488). That value depends on the full-batch
gradient norm at that step, which tends to 0 near a minimum (taking the threshold to 0 with it), on the
gradient lying along the top eigenvector, and, with a momentum or Adam base, on the base's own map; it
is not a property of the hyper-parameters that can be drawn as a line against λmax, so hessdyn draws none.

Resuming: the perturbation lives only inside a step; :meth:`SAM.state_dict` is the base optimizer's state
plus ρ, adaptive and η, so a run resumed from a checkpoint continues bit for bit (on the CPU).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch

from hessdyn.config import schema as s
from hessdyn.config.flat_minima import ASAM_ETA, SAM_BASES
from hessdyn.training.optimizers import build_optimizer

STATE_FORMAT = "hessdyn-sam-v1"


class SAM(torch.optim.Optimizer):
    """Sharpness-aware minimization around ``base``; shares the base's ``param_groups`` (setting a group's
    ``lr`` sets the base's). Use :meth:`step` with a closure that computes the minibatch loss, calls
    ``backward()`` and returns the loss (SAM zeroes the gradients before each of its two calls; clip
    gradients inside the closure, if at all). Or, by hand: backward at w, :meth:`perturb`, backward at
    w + ε, :meth:`restore_and_step`.
    """

    def __init__(
        self, base: torch.optim.Optimizer, rho: float, *, adaptive: bool = False, eta: float = ASAM_ETA
    ) -> None:
        if not (math.isfinite(rho) and rho > 0):
            raise ValueError(f"rho must be a finite number > 0, got {rho}")
        if not (math.isfinite(eta) and eta >= 0):
            raise ValueError(f"eta must be a finite number >= 0, got {eta}")
        super().__init__(base.param_groups, dict(base.defaults))
        self.param_groups = base.param_groups
        self.base = base
        self.rho, self.adaptive, self.eta = float(rho), bool(adaptive), float(eta)
        self._saved: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None

    def _params_with_grad(self) -> list[torch.Tensor]:
        return [p for group in self.param_groups for p in group["params"] if p.grad is not None]

    @torch.no_grad()
    def perturb(self) -> None:
        """w ← w + ε(w) from the gradients now in ``.grad`` (those at w); remembers w. ε = 0 when g = 0."""
        if self._saved is not None:
            raise RuntimeError("SAM.perturb called twice without restore_and_step in between")
        params = self._params_with_grad()
        self._saved = (params, [p.detach().clone() for p in params])
        if not params:
            return
        grads = [p.grad for p in params if p.grad is not None]  # all of them (_params_with_grad)
        scaled: Sequence[torch.Tensor]
        steps: Sequence[torch.Tensor]
        if self.adaptive:  # T_w = |w| + η, ε = ρ T_w (T_w g) / ||T_w g||
            scales = torch._foreach_add(torch._foreach_abs(params), self.eta)
            scaled = torch._foreach_mul(scales, grads)
            steps = torch._foreach_mul(scales, scaled)
        else:
            scaled = steps = grads
        norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(scaled)))
        if bool(norm > 0):
            torch._foreach_add_(params, torch._foreach_mul(steps, self.rho / norm))

    @torch.no_grad()
    def restore_and_step(self) -> None:
        """w ← the remembered w, then the base optimizer's step with the gradients now in ``.grad`` (at w + ε)."""
        if self._saved is None:
            raise RuntimeError("SAM.restore_and_step called without perturb")
        params, originals = self._saved
        self._saved = None
        if params:
            torch._foreach_copy_(params, originals)
        self.base.step()

    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor:  # type: ignore[override]
        """One SAM step: two calls of ``closure``; returns the loss of the first call (the loss at w)."""
        if closure is None:
            raise RuntimeError("SAM needs a closure: it evaluates the loss and its gradient twice per step")
        with torch.enable_grad():
            self.zero_grad(set_to_none=True)
            loss = closure()
        self.perturb()
        with torch.enable_grad():
            self.zero_grad(set_to_none=True)
            closure()
        self.restore_and_step()
        return loss

    def state_dict(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "rho": self.rho,
            "adaptive": self.adaptive,
            "eta": self.eta,
            "base": self.base.state_dict(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the base optimizer's state; refuses a state saved with other SAM settings."""
        if state_dict.get("format") != STATE_FORMAT:
            raise ValueError(
                f"not a SAM optimizer state (format {state_dict.get('format')!r}, expected {STATE_FORMAT})"
            )
        saved = (state_dict["rho"], state_dict["adaptive"], state_dict["eta"])
        if saved != (self.rho, self.adaptive, self.eta):
            raise ValueError(
                f"SAM state saved with rho, adaptive, eta = {saved}, this optimizer has "
                f"{(self.rho, self.adaptive, self.eta)}"
            )
        self.base.load_state_dict(state_dict["base"])
        self.param_groups = self.base.param_groups


def build_sam(
    base_cfg: s.OptimizerConfig,
    params: Iterable[torch.nn.Parameter],
    *,
    rho: float,
    adaptive: bool = False,
    eta: float = ASAM_ETA,
) -> SAM:
    """SAM around the sgd|momentum|adam optimizer that ``base_cfg`` describes (built as for a plain run)."""
    if base_cfg.name not in SAM_BASES:
        raise ValueError(f"SAM's base optimizer must be one of {SAM_BASES}, got {base_cfg.name!r}")
    return SAM(build_optimizer(base_cfg, params), rho, adaptive=adaptive, eta=eta)
