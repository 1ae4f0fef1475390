"""Learned homoscedastic uncertainty (Kendall, Gal & Cipolla, CVPR 2018, Eq. 7 and 10).

Learns s_i = log(sigma_i^2) per task:

- form ``paper`` (default): classification ``exp(-s) * L + s / 2``,
  regression ``0.5 * exp(-s) * L + s / 2``;
- form ``uniform``: ``0.5 * exp(-s) * L + s / 2`` for every task (what common libraries do).

The total loss can be negative, and that is expected, not a bug: the s / 2 term goes negative
once a task's loss is small. E.g. the minimum over s of ``exp(-s) * L + s / 2`` is
``(1 + log(2 L)) / 2``, negative for L < 1 / (2e); watch the task losses, not the total.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

import torch
from torch import nn

from mtl_perception.errors import ConfigError
from mtl_perception.model.tasks import CLASSIFICATION, TASK_KIND
from mtl_perception_training.weighting.base import TaskWeighting


class UncertaintyWeighting(TaskWeighting):
    """Learned homoscedastic uncertainty, s_i = log(sigma_i^2) (Kendall et al. 2018)."""

    FORMS = ("paper", "uniform")

    def __init__(self, tasks: Iterable[str], form: str = "paper", init: float = 0.0, lr: float | None = None) -> None:
        super().__init__(tasks)
        if form not in self.FORMS:
            raise ConfigError(f"weighting.form: unknown form {form!r}; choose one of {list(self.FORMS)}")
        if isinstance(init, bool) or not isinstance(init, (int, float)) or not math.isfinite(init):
            raise ConfigError(f"weighting.init must be a finite number (initial log sigma^2), got {init!r}")
        if lr is not None and (isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0):
            raise ConfigError(f"weighting.lr must be a positive number or null, got {lr!r}")
        self.form = form
        self.lr = None if lr is None else float(lr)
        self.log_vars = nn.ParameterDict({t: nn.Parameter(torch.tensor(float(init))) for t in self.tasks})
        # The factor in front of exp(-s) * L: 1 for a softmax likelihood in the paper's form,
        # 1/2 for a Gaussian regression likelihood (and for every task in the uniform form).
        self.scale = {
            t: 1.0 if form == "paper" and TASK_KIND[t] == CLASSIFICATION else 0.5 for t in self.tasks
        }

    def combine(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        total = []
        for task in self.tasks:
            s = self.log_vars[task]
            total.append(self.scale[task] * torch.exp(-s) * losses[task].float() + 0.5 * s)
        return torch.stack(total).sum()

    def weights(self) -> dict[str, float]:
        return {t: self.scale[t] * math.exp(-self.log_vars[t].item()) for t in self.tasks}

    def log_values(self) -> dict[str, float]:
        values = {f"s_{t}": self.log_vars[t].item() for t in self.tasks}
        return {**values, **super().log_values()}

    def param_groups(self, base_lr: float) -> list[dict[str, Any]]:
        # Weight decay would pull every s_i towards 0 (sigma = 1), i.e. towards equal weights,
        # which is exactly what the method is meant to learn away from.
        lr = base_lr if self.lr is None else self.lr
        return [{"params": list(self.log_vars.values()), "lr": lr, "weight_decay": 0.0}]
