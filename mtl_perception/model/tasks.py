"""The three tasks of the network: their names, loss kind and number of output channels.

One table shared by the model (decoder widths), the losses and the task weighting (which
uncertainty form a task takes), so a task's nature is stated once.
"""
from __future__ import annotations

TASKS: tuple[str, ...] = ("semantic", "instance", "depth")

CLASSIFICATION = "classification"
REGRESSION = "regression"

# Kendall et al. weigh a classification likelihood (softmax) differently from a Gaussian or
# Laplace regression likelihood, so the weighting needs to know which is which.
TASK_KIND: dict[str, str] = {
    "semantic": CLASSIFICATION,
    "instance": REGRESSION,
    "depth": REGRESSION,
}

# Fixed widths of the regression heads: (dx, dy) to the instance centroid, and disparity.
_REGRESSION_CHANNELS: dict[str, int] = {"instance": 2, "depth": 1}


def output_channels(task: str, num_classes: int) -> int:
    """Channels of ``task``'s decoder output: class logits, a 2-D vector or one disparity."""
    if task == "semantic":
        return num_classes
    return _REGRESSION_CHANNELS[task]
