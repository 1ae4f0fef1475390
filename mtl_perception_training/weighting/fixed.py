"""Constant task weights: hand-picked or from a grid search (the paper's fixed-weight baselines)."""
from __future__ import annotations

import math
from typing import Iterable, Mapping

import torch

from mtl_perception.errors import ConfigError
from mtl_perception.model.tasks import TASKS
from mtl_perception_training.weighting.base import TaskWeighting


class FixedWeighting(TaskWeighting):
    """Hand-picked constant weights, e.g. from a grid search: ``weights: {task: w}``."""

    def __init__(self, tasks: Iterable[str], weights: Mapping[str, float] | None = None) -> None:
        super().__init__(tasks)
        if not isinstance(weights, Mapping):
            raise ConfigError(f"weighting.weights must map each task to a weight, got {weights!r}")
        unknown = sorted(set(weights) - set(TASKS))
        if unknown:
            raise ConfigError(f"weighting.weights: unknown task(s) {unknown}; tasks are {list(TASKS)}")
        missing = [t for t in self.tasks if t not in weights]
        if missing:
            raise ConfigError(f"weighting.weights: no weight for trained task(s) {missing}")
        for task in self.tasks:
            w = weights[task]
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not (math.isfinite(w) and w >= 0):
                raise ConfigError(f"weighting.weights.{task} must be a finite number >= 0, got {w!r}")
        # Weights of tasks that are not trained (a grid-search config reused for a subset) are ignored.
        self._weights = {t: float(weights[t]) for t in self.tasks}

    def combine(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return torch.stack([self._weights[t] * losses[t].float() for t in self.tasks]).sum()

    def weights(self) -> dict[str, float]:
        return dict(self._weights)


class EqualWeighting(TaskWeighting):
    """Plain sum of the task losses (every weight 1), the paper's naive multi-task baseline."""

    def combine(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return torch.stack([losses[t].float() for t in self.tasks]).sum()

    def weights(self) -> dict[str, float]:
        return {t: 1.0 for t in self.tasks}
