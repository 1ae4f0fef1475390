"""Dynamic Weight Averaging (Liu, Johns & Davison, CVPR 2019, Eq. 7), behind ``TaskWeighting``.

Each task's weight follows how fast its loss is falling, with no learned parameter::

    w_i(t) = K * exp(r_i(t-1) / T) / sum_j exp(r_j(t-1) / T),   r_i(t-1) = L_i(t-1) / L_i(t-2)

where L_i(t) is task i's loss averaged over window t. A task whose loss stalls (r near 1)
gains weight from tasks that still improve quickly (r < 1). The paper averages over epochs;
here a window is ``window`` optimiser steps, because a weighting does not know the epoch
length (set it to the epoch length to match the paper). Until two windows are complete there
is no rate yet and every weight is 1, so the weights sum to K from the first step on.

Losses are recorded in training mode only (the trainer never puts the weighting in eval
mode; tests and tools can, to query without recording). The window sums and the last two
window means are buffers, so they travel in the checkpoint and a resumed run continues the
same schedule. Under data parallelism each process averages its own losses, so weights can
differ slightly between processes (the gradients are still averaged as usual).
"""
from __future__ import annotations

import math
from typing import Iterable, Mapping

import torch

from mtl_perception.errors import ConfigError
from mtl_perception_training.weighting.base import TaskWeighting


class DynamicWeightAverage(TaskWeighting):
    """DWA: weights from the ratio of each task's last two window-mean losses, temperature ``T``."""

    def __init__(self, tasks: Iterable[str], temperature: float = 2.0, window: int = 100) -> None:
        super().__init__(tasks)
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not (
            math.isfinite(temperature) and temperature > 0
        ):
            raise ConfigError(f"weighting.temperature must be a positive number, got {temperature!r}")
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ConfigError(f"weighting.window must be a positive number of steps, got {window!r}")
        self.temperature = float(temperature)
        self.window = window
        n = len(self.tasks)
        self.register_buffer("window_sum", torch.zeros(n, dtype=torch.float64))
        self.register_buffer("window_steps", torch.zeros((), dtype=torch.long))
        # Means of the last two complete windows: row 0 = L(t-2), row 1 = L(t-1).
        self.register_buffer("history", torch.zeros(2, n, dtype=torch.float64))
        self.register_buffer("windows_done", torch.zeros((), dtype=torch.long))

    def current_weights(self) -> torch.Tensor:
        """The weights (task order) for the current step, a float tensor on the buffers' device."""
        if int(self.windows_done) < 2:
            return torch.ones(len(self.tasks), device=self.history.device)
        older, newer = self.history
        # A task with no valid pixel in a whole window has mean 0: call its rate neutral (1).
        rate = torch.where(older > 0, newer / older.clamp_min(1e-12), torch.ones_like(newer))
        return (len(self.tasks) * torch.softmax(rate / self.temperature, dim=0)).float()

    def combine(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        stacked = torch.stack([losses[t].float() for t in self.tasks])
        total = (self.current_weights() * stacked).sum()
        if self.training:
            self._record(stacked.detach())
        return total

    @torch.no_grad()
    def _record(self, losses: torch.Tensor) -> None:
        """Add one step's losses to the window; a full window becomes the newest history row."""
        self.window_sum += losses.double()
        self.window_steps += 1
        if int(self.window_steps) == self.window:
            self.history[0] = self.history[1]
            self.history[1] = self.window_sum / self.window
            self.window_sum.zero_()
            self.window_steps.zero_()
            self.windows_done += 1

    def weights(self) -> dict[str, float]:
        return dict(zip(self.tasks, self.current_weights().tolist()))
