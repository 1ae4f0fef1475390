"""GradNorm (Chen, Badrinarayanan, Lee & Rabinovich, ICML 2018), behind ``TaskWeighting``.

Learned weights w_i (start 1, sum K) are trained, not to lower the task losses, but so that
each task's gradient at the last shared layer W has a norm proportional to how far the task
lags behind::

    G_i = || d(w_i L_i) / dW ||,   r_i = (L_i / L_i(0)) / mean_j (L_j / L_j(0))
    L_grad = sum_i | G_i - mean(G) * r_i ** alpha |      (the target term held constant)

and after every optimiser step the weights are renormalised to sum to K. The network itself
is trained on ``sum_i w_i L_i`` with the w_i held constant.

Two implementation choices, both exact rather than approximations:

- G_i = w_i * ||dL_i/dW|| because w_i is a scalar, so the norms are taken without a
  double-backward graph (``autograd.grad`` of each task loss at W, which only runs back
  through that task's decoder) and L_grad is a function of w alone.
- ``combine`` returns ``sum_i w_i.detach() L_i + (L_grad - L_grad.detach())``: its value is
  the weighted task loss (what the trainer logs and checks for NaN), its gradient is the
  network's from the weighted loss and w's from L_grad, so one ``backward`` and one
  optimiser step serve both, with no change to the training loop.

The renormalisation ("after each step") is done in place at the start of the next
``combine`` (and ``weights`` reports the renormalised values), which is the same sequence of
weights. The trainer hands the network over once through ``bind_model``; W is the last
weight tensor outside ``model.decoders`` (ASPP's 1x1 projection in ``MultiTaskNet``, the shared skip
fusion's last convolution with ``model.decoder: skip_shared``). Each
task's starting loss L_i(0) is taken at the first step where it is non-zero (a batch can hold
no instance pixel) and kept in a buffer, so it survives a resume.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

import torch
from torch import nn

from mtl_perception.errors import ConfigError
from mtl_perception_training.weighting.base import TaskWeighting

# Renormalisation floor for a weight, as a fraction of K: a large step could push a weight to
# or below zero, after which its task would be dropped (or its loss maximised).
_MIN_WEIGHT_FRACTION = 1e-3


def last_shared_weight(model: nn.Module) -> nn.Parameter:
    """The last weight tensor (ndim > 1) of the shared layers, i.e. outside ``model.decoders``."""
    decoder_params = {id(p) for p in model.decoders.parameters()} if hasattr(model, "decoders") else set()
    shared = [p for p in model.parameters() if p.ndim > 1 and p.requires_grad and id(p) not in decoder_params]
    if not shared:
        raise ValueError(f"{type(model).__name__} has no shared weight tensor outside its decoders")
    return shared[-1]


class GradNorm(TaskWeighting):
    """GradNorm: learned w_i that balance gradient norms at the last shared layer, sum w = K."""

    def __init__(self, tasks: Iterable[str], alpha: float = 1.5, lr: float | None = None) -> None:
        super().__init__(tasks)
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not (math.isfinite(alpha) and alpha >= 0):
            raise ConfigError(f"weighting.alpha must be a number >= 0 (restoring-force strength), got {alpha!r}")
        if lr is not None and (isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0):
            raise ConfigError(f"weighting.lr must be a positive number or null, got {lr!r}")
        self.alpha = float(alpha)
        self.lr = None if lr is None else float(lr)
        n = len(self.tasks)
        self.task_weights = nn.Parameter(torch.ones(n))
        self.register_buffer("initial_losses", torch.full((n,), float("nan")))
        # A tuple, not an attribute: assigning a Parameter would register it (and the model's
        # weights would appear in this module's state dict and optimiser group).
        self._shared: tuple[nn.Parameter, ...] = ()

    def bind_model(self, model: nn.Module) -> None:
        """Called by the trainer: GradNorm measures gradient norms at ``model``'s last shared layer."""
        self._shared = (last_shared_weight(model),)

    @torch.no_grad()
    def _renormalise(self) -> None:
        k = len(self.tasks)
        self.task_weights.clamp_(min=_MIN_WEIGHT_FRACTION * k)
        self.task_weights.mul_(k / self.task_weights.sum())

    def combine(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        self._renormalise()
        stacked = torch.stack([losses[t].float() for t in self.tasks])
        weighted = (self.task_weights.detach() * stacked).sum()
        if not (self._shared and self.training and torch.is_grad_enabled() and stacked.requires_grad):
            return weighted
        grad_loss = self._gradnorm_loss(losses, stacked.detach())
        return weighted + (grad_loss - grad_loss.detach())

    def _gradnorm_loss(self, losses: Mapping[str, torch.Tensor], values: torch.Tensor) -> torch.Tensor:
        (shared,) = self._shared
        norms = []
        for task in self.tasks:
            (grad,) = torch.autograd.grad(losses[task], shared, retain_graph=True, allow_unused=True)
            norms.append(torch.zeros((), device=values.device) if grad is None else torch.linalg.vector_norm(grad.float()))
        with torch.no_grad():
            first = torch.isnan(self.initial_losses) & (values > 0)
            self.initial_losses.copy_(torch.where(first, values, self.initial_losses))
            # Tasks without a starting loss yet count as on schedule (ratio 1).
            ratio = torch.where(torch.isnan(self.initial_losses), torch.ones_like(values), values / self.initial_losses)
            relative = ratio / ratio.mean().clamp_min(1e-12)
        grad_norms = self.task_weights * torch.stack(norms)
        target = (grad_norms.mean() * relative**self.alpha).detach()
        return (grad_norms - target).abs().sum()

    def weights(self) -> dict[str, float]:
        k = len(self.tasks)
        w = self.task_weights.detach().clamp(min=_MIN_WEIGHT_FRACTION * k)
        return dict(zip(self.tasks, (w * (k / w.sum())).tolist()))

    def param_groups(self, base_lr: float) -> list[dict[str, Any]]:
        # No weight decay: it would pull every weight towards 0 against the sum-to-K constraint.
        lr = base_lr if self.lr is None else self.lr
        return [{"params": [self.task_weights], "lr": lr, "weight_decay": 0.0}]
