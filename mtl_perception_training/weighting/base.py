"""The interface every task weighting implements (one class per strategy, as in LibMTL).

Each strategy is an ``nn.Module`` so learned weights travel in the checkpoint's
``"weighting"`` state dict and move to the device with ``.to()``.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Iterable, Mapping

import torch
from torch import nn


class TaskWeighting(nn.Module, ABC):
    """Combine ``{task: scalar loss}`` into the total loss for the configured tasks."""

    def __init__(self, tasks: Iterable[str]) -> None:
        super().__init__()
        self.tasks: tuple[str, ...] = tuple(tasks)

    def forward(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        if set(losses) != set(self.tasks):
            raise ValueError(f"weighting expects losses for {list(self.tasks)}, got {sorted(losses)}")
        return self.combine(losses)

    @abstractmethod
    def combine(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The total loss; ``losses`` holds exactly ``self.tasks``."""

    @abstractmethod
    def weights(self) -> dict[str, float]:
        """Effective weight of each task: the factor that multiplies its loss right now."""

    def log_values(self) -> dict[str, float]:
        """Scalars to log every step: ``w_<task>`` (and ``s_<task>`` where learned)."""
        return {f"w_{task}": w for task, w in self.weights().items()}

    def param_groups(self, base_lr: float) -> list[dict[str, Any]]:
        """Optimiser parameter groups for learned weights; none for fixed strategies."""
        return []

    def bind_model(self, model: nn.Module) -> None:
        """Called once by the trainer with the network; only gradient-based strategies need it."""
