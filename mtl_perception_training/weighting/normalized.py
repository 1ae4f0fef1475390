"""Loss normalisation: each task loss divided by twice its running mean, nothing learned.

A control for the uncertainty weighting (issue 20). At its fixed point the learned weight of a
task is 1 / (2 L_i) in both of the paper's forms (classification: exp(-s) L + s/2 is smallest
at exp(-s) = 1 / (2 L); regression: 0.5 exp(-s) L + s/2 at 0.5 exp(-s) = 1 / (2 L)). This
strategy puts every task there from the first step, with the mean tracked instead of learned:
if it matches the uncertainty runs, what matters is where the weights end, not that s is learned.

The running mean is an exponential average of the detached losses (bias-corrected as Adam's
moments are, so the first step already divides by that step's loss), recorded in training mode
only; it is a buffer, so it travels in the checkpoint and a resumed run continues it.
"""
from __future__ import annotations

import math
from typing import Iterable, Mapping

import torch

from mtl_perception.errors import ConfigError
from mtl_perception_training.weighting.base import TaskWeighting

_EPS = 1e-8


class LossNormalization(TaskWeighting):
    """w_i = 1 / (2 * running mean of L_i), the mean an exponential average with ``momentum``."""

    def __init__(self, tasks: Iterable[str], momentum: float = 0.99) -> None:
        super().__init__(tasks)
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not (
            math.isfinite(momentum) and 0 <= momentum < 1
        ):
            raise ConfigError(f"weighting.momentum must be a number in [0, 1), got {momentum!r}")
        self.momentum = float(momentum)
        self.register_buffer("average", torch.zeros(len(self.tasks), dtype=torch.float64))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def _mean(self) -> torch.Tensor:
        """Bias-corrected running mean per task (ones before the first step)."""
        if int(self.steps) == 0:
            return torch.ones_like(self.average)
        return self.average / (1.0 - self.momentum ** int(self.steps))

    def combine(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        stacked = torch.stack([losses[t].float() for t in self.tasks])
        if self.training:
            with torch.no_grad():
                self.average.mul_(self.momentum).add_(stacked.detach().double(), alpha=1.0 - self.momentum)
                self.steps.add_(1)
        weights = (0.5 / self._mean().clamp_min(_EPS)).to(stacked)
        return (weights * stacked).sum()

    def weights(self) -> dict[str, float]:
        return {t: float(0.5 / max(m, _EPS)) for t, m in zip(self.tasks, self._mean().tolist())}
