"""Task weighting strategies: how per-task losses become the one loss that is minimised.

One class per strategy behind one interface (``base.TaskWeighting``; LibMTL's layout: one
module per strategy), picked by name from the ``weighting:`` config section through
``WEIGHTINGS``. A new strategy is a module here and one line in ``WEIGHTINGS``.
"""
from __future__ import annotations

import inspect
from typing import Any, Iterable, Mapping

from mtl_perception.errors import ConfigError
from mtl_perception.model.tasks import TASKS
from mtl_perception_training.weighting.base import TaskWeighting
from mtl_perception_training.weighting.dwa import DynamicWeightAverage
from mtl_perception_training.weighting.fixed import EqualWeighting, FixedWeighting
from mtl_perception_training.weighting.gradnorm import GradNorm
from mtl_perception_training.weighting.normalized import LossNormalization
from mtl_perception_training.weighting.uncertainty import UncertaintyWeighting

WEIGHTINGS: dict[str, type[TaskWeighting]] = {
    "uncertainty": UncertaintyWeighting,
    "fixed": FixedWeighting,
    "equal": EqualWeighting,
    "dwa": DynamicWeightAverage,
    "gradnorm": GradNorm,
    "normalized": LossNormalization,
}

__all__ = [
    "WEIGHTINGS",
    "DynamicWeightAverage",
    "EqualWeighting",
    "FixedWeighting",
    "GradNorm",
    "LossNormalization",
    "TaskWeighting",
    "UncertaintyWeighting",
    "build_weighting",
]


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
