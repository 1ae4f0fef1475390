"""Per-task losses of the paper (Sec. 4): cross-entropy, and L1 on instance vectors and disparity.

Every loss is a mean over the pixels that carry a target (labelled, inside an instance,
valid disparity), so the value means the same thing whatever the image size or batch, and
its scale matches the evaluation metrics:
- instance: sum over instance pixels of |dx| + |dy|, divided by 2 * N, i.e. the mean absolute
  error of the vector components, which is the metric ``instance_err_px``;
- depth: mean absolute disparity error in pixels over valid pixels, i.e. ``disparity_err_px``.

A task with no valid pixel in the batch contributes an exact 0 that is still attached to the
graph (sum / max(N, 1)), never NaN, so a batch of crops without any car does not poison the
weights. Masking uses ``torch.where`` and counts stay tensors, so nothing waits on the GPU.
"""
from __future__ import annotations

from typing import Callable, Iterable, Mapping

import torch
import torch.nn.functional as F

from mtl_perception.data.labels import IGNORE_INDEX


def _check_size(task: str, pred: torch.Tensor, target_hw: torch.Size) -> None:
    if pred.shape[-2:] != target_hw:
        raise ValueError(f"{task}: prediction is {tuple(pred.shape[-2:])} but its target is {tuple(target_hw)}")


def semantic_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over pixels whose label is not ``IGNORE_INDEX``; logits (B,C,H,W), labels (B,H,W)."""
    _check_size("semantic", logits, labels.shape[-2:])
    total = F.cross_entropy(logits.float(), labels, ignore_index=IGNORE_INDEX, reduction="sum")
    count = (labels != IGNORE_INDEX).sum()
    return total / count.clamp(min=1)


def instance_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L1 on (dx, dy): sum of |dx| + |dy| over instance pixels / (2 * N); pred, target (B,2,H,W)."""
    _check_size("instance", pred, mask.shape[-2:])
    error = torch.where(mask.unsqueeze(1), (pred.float() - target).abs(), 0.0)
    return error.sum() / (2 * mask.sum()).clamp(min=1)


def depth_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L1 on disparity over valid pixels; pred (B,1,H,W), target and mask (B,H,W)."""
    _check_size("depth", pred, mask.shape[-2:])
    error = torch.where(mask, (pred[:, 0].float() - target).abs(), 0.0)
    return error.sum() / mask.sum().clamp(min=1)


# task -> loss from (network output, batch); the batch keys are those of CityscapesDataset.
TASK_LOSSES: dict[str, Callable[[torch.Tensor, Mapping[str, torch.Tensor]], torch.Tensor]] = {
    "semantic": lambda out, batch: semantic_loss(out, batch["semantic"]),
    "instance": lambda out, batch: instance_loss(out, batch["instance"], batch["instance_mask"]),
    "depth": lambda out, batch: depth_loss(out, batch["disparity"], batch["disparity_mask"]),
}


def task_losses(
    outputs: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor], tasks: Iterable[str]
) -> dict[str, torch.Tensor]:
    """``{task: scalar loss}`` for each task, from the model's outputs and a dataset batch."""
    return {task: TASK_LOSSES[task](outputs[task], batch) for task in tasks}
