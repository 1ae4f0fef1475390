"""Task weighting strategies: how per-task losses become the one loss that is minimised.

One class per strategy behind one interface (as LibMTL does), picked by name from the
``weighting:`` config section through ``WEIGHTINGS``; later strategies (DWA, GradNorm) plug in
by adding a class there. Each is an ``nn.Module`` so learned weights travel in the checkpoint's
``"weighting"`` state dict and move to the device with ``.to()``.

``UncertaintyWeighting`` is Kendall, Gal & Cipolla (CVPR 2018), Eq. 7 and 10, learning
s_i = log(sigma_i^2) per task:

- form ``paper`` (default): classification ``exp(-s) * L + s / 2``,
  regression ``0.5 * exp(-s) * L + s / 2``;
- form ``uniform``: ``0.5 * exp(-s) * L + s / 2`` for every task (what common libraries do).

The total loss can be negative, and that is expected, not a bug: the s / 2 term goes negative
once a task's loss is small. E.g. the minimum over s of ``exp(-s) * L + s / 2`` is
``(1 + log(2 L)) / 2``, negative for L < 1 / (2e); watch the task losses, not the total.
"""
from __future__ import annotations

import inspect
import math
from abc import ABC, abstractmethod
from typing import Any, Iterable, Mapping

import torch
from torch import nn

from mtl_perception.errors import ConfigError
from mtl_perception.model.tasks import CLASSIFICATION, TASK_KIND, TASKS


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


WEIGHTINGS: dict[str, type[TaskWeighting]] = {
    "uncertainty": UncertaintyWeighting,
    "fixed": FixedWeighting,
    "equal": EqualWeighting,
}


def build_weighting(cfg: Mapping[str, Any] | None, tasks: Iterable[str]) -> TaskWeighting:
    """The strategy named by ``cfg["method"]`` with the remaining keys as its options.

    Each strategy's accepted options are the keyword arguments of its constructor, so an
    unknown key (a typo such as ``intit``) is a ``ConfigError`` instead of being ignored.
    """
    if cfg is not None and not isinstance(cfg, Mapping):
        raise ConfigError(f"weighting section must be a mapping with a 'method', got {cfg!r}")
    cfg = dict(cfg or {"method": "uncertainty"})
    method = cfg.pop("method", "uncertainty")
    if method not in WEIGHTINGS:
        raise ConfigError(f"weighting.method: unknown method {method!r}; choose one of {sorted(WEIGHTINGS)}")
    tasks = tuple(tasks)
    bad_tasks = [t for t in tasks if t not in TASKS]
    if bad_tasks or not tasks:
        raise ConfigError(f"weighting: tasks must be a non-empty subset of {list(TASKS)}, got {list(tasks)}")
    cls = WEIGHTINGS[method]
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "tasks"}
    unknown = sorted(set(cfg) - accepted)
    if unknown:
        raise ConfigError(f"weighting ({method}): unknown key(s) {unknown}; accepted: {sorted(accepted)}")
    return cls(tasks, **cfg)


# Strategies in modules of their own register themselves in WEIGHTINGS when imported. Plain
# imports at the end, so that either import order works (they subclass TaskWeighting above).
import mtl_perception_training.dwa  # noqa: E402,F401  ("dwa": Dynamic Weight Averaging)
import mtl_perception_training.gradnorm  # noqa: E402,F401  ("gradnorm": GradNorm)
