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

from typing import Any, Callable, Iterable, Mapping

import torch
import torch.nn.functional as F

from mtl_perception.data.labels import IGNORE_INDEX


def _check_size(task: str, pred: torch.Tensor, target_hw: torch.Size) -> None:
    if pred.shape[-2:] != target_hw:
        raise ValueError(f"{task}: prediction is {tuple(pred.shape[-2:])} but its target is {tuple(target_hw)}")


def semantic_loss(logits: torch.Tensor, labels: torch.Tensor, hard_pixels: float = 1.0) -> torch.Tensor:
    """Cross-entropy over pixels whose label is not ``IGNORE_INDEX``; logits (B,C,H,W), labels (B,H,W).

    ``hard_pixels`` < 1 keeps only that share of the labelled pixels, those with the largest
    loss (hard-pixel mining, as Panoptic-DeepLab trains its semantic head with 0.2): road, sky
    and buildings are learnt early and then fill most of the mean, while poles, signs and
    persons, a few percent of the pixels, stay wrong; mining keeps the gradient on them.
    """
    _check_size("semantic", logits, labels.shape[-2:])
    if hard_pixels >= 1.0:
        total = F.cross_entropy(logits.float(), labels, ignore_index=IGNORE_INDEX, reduction="sum")
        count = (labels != IGNORE_INDEX).sum()
        return total / count.clamp(min=1)
    per_pixel = F.cross_entropy(logits.float(), labels, ignore_index=IGNORE_INDEX, reduction="none").flatten()
    count = int((labels != IGNORE_INDEX).sum())  # one sync per step: topk needs k on the host
    k = max(1, int(count * hard_pixels)) if count else 1
    return per_pixel.topk(min(k, per_pixel.numel())).values.mean() if count else per_pixel.sum() * 0.0


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


# task -> loss from (network output, batch, loss settings); the batch keys are those of CityscapesDataset.
TASK_LOSSES: dict[str, Callable[[torch.Tensor, Mapping[str, torch.Tensor], Mapping[str, Any]], torch.Tensor]] = {
    "semantic": lambda out, batch, cfg: semantic_loss(out, batch["semantic"], cfg.get("semantic_hard_pixels", 1.0)),
    "instance": lambda out, batch, cfg: instance_loss(out, batch["instance"], batch["instance_mask"]),
    "depth": lambda out, batch, cfg: depth_loss(out, batch["disparity"], batch["disparity_mask"]),
}


def task_losses(
    outputs: Mapping[str, torch.Tensor],
    batch: Mapping[str, torch.Tensor],
    tasks: Iterable[str],
    settings: Mapping[str, Any] | None = None,
) -> dict[str, torch.Tensor]:
    """``{task: scalar loss}`` for each task, from the model's outputs and a dataset batch;
    ``settings`` is the training config's ``loss`` section (defaults: the paper's losses)."""
    return {task: TASK_LOSSES[task](outputs[task], batch, settings or {}) for task in tasks}
