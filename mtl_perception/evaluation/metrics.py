"""The paper's Table-1 metrics, accumulated over a whole split.

Every metric is kept as sums and counts (a confusion matrix for the classes, sums of absolute
and squared errors with their pixel counts for the regressions) and only divided at the end:
a mean of per-batch means would weight a batch with few valid pixels like a full one. Sums
also make the metrics exact under data-parallel evaluation, where each process accumulates
its shard and the sums are added (``state_tensor`` / ``load_state_tensor``).

Keys (paper, Table 1): ``miou`` over the 19 classes, ``instance_err_px`` (mean absolute
error of the (dx, dy) components over labelled instance pixels), ``disparity_err_px`` (mean
absolute error over valid pixels), plus ``disparity_rmse_px`` and ``iou_<class>``. A class
absent from both the ground truth and the predictions has no IoU (NaN) and is left out of
the mean, as in the Cityscapes evaluation.
"""
from __future__ import annotations

import math
from typing import Iterable

import torch

from mtl_perception.data.labels import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES

#: Metric names that are better when lower (everything else, e.g. ``miou``, is better higher).
LOWER_IS_BETTER = frozenset({"instance_err_px", "disparity_err_px", "disparity_rmse_px"})

# Layout of the flat float64 state: confusion matrix, then
# (instance abs sum, instance component count, disparity abs sum, disparity sq sum, disparity count).
_N_SCALARS = 5


class MetricAccumulator:
    """Sums and counts for mIoU, instance and disparity errors over many batches."""

    def __init__(self, tasks: Iterable[str] = ("semantic", "instance", "depth"), num_classes: int = NUM_CLASSES) -> None:
        """``tasks`` says which metrics ``compute`` reports (those of the network's heads)."""
        self.tasks = tuple(tasks)
        self.num_classes = num_classes
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.float64)
        self.instance_abs = 0.0
        self.instance_count = 0.0
        self.disparity_abs = 0.0
        self.disparity_sq = 0.0
        self.disparity_count = 0.0

    @torch.no_grad()
    def update_semantic(self, pred: torch.Tensor, gt: torch.Tensor) -> None:
        """Add predicted train ids ``pred`` against ``gt`` (same shape; 255 in gt is ignored).

        Rows of the confusion matrix are ground truth, columns predictions.
        """
        valid = gt != IGNORE_INDEX
        n = self.num_classes
        idx = gt[valid].to(torch.int64) * n + pred[valid].to(torch.int64)
        self.confusion += torch.bincount(idx.cpu(), minlength=n * n).reshape(n, n).to(torch.float64)

    @torch.no_grad()
    def update_instance(self, pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> None:
        """Add (B,2,H,W) predicted and target centroid offsets over ``mask`` (B,H,W) pixels."""
        m = mask.unsqueeze(1).expand_as(gt)
        self.instance_abs += (pred.float() - gt.float()).abs()[m].double().sum().item()
        self.instance_count += float(m.sum().item())

    @torch.no_grad()
    def update_disparity(self, pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> None:
        """Add predicted and target disparity (B,H,W), in pixels, over ``mask`` (B,H,W) pixels."""
        err = (pred.float() - gt.float())[mask].double()
        self.disparity_abs += err.abs().sum().item()
        self.disparity_sq += err.square().sum().item()
        self.disparity_count += float(mask.sum().item())

    def update(self, outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> None:
        """Add one batch of network ``outputs`` (model forward dict) against a dataset ``batch``."""
        if "semantic" in outputs:
            self.update_semantic(outputs["semantic"].argmax(1), batch["semantic"].to(outputs["semantic"].device))
        if "instance" in outputs:
            dev = outputs["instance"].device
            self.update_instance(outputs["instance"], batch["instance"].to(dev), batch["instance_mask"].to(dev))
        if "depth" in outputs:
            dev = outputs["depth"].device
            self.update_disparity(outputs["depth"][:, 0], batch["disparity"].to(dev), batch["disparity_mask"].to(dev))

    def per_class_iou(self) -> torch.Tensor:
        """IoU per class (float64); NaN for a class absent from ground truth and predictions."""
        tp = self.confusion.diagonal()
        union = self.confusion.sum(0) + self.confusion.sum(1) - tp
        return torch.where(union > 0, tp / union.clamp_min(1), torch.full_like(tp, math.nan))

    def compute(self) -> dict[str, float]:
        """The metrics of ``self.tasks``; NaN where a task saw no valid pixel."""
        out: dict[str, float] = {}
        if "semantic" in self.tasks:
            iou = self.per_class_iou()
            present = ~iou.isnan()
            out["miou"] = float(iou[present].mean()) if present.any() else math.nan
            names = CLASS_NAMES if self.num_classes == len(CLASS_NAMES) else [str(i) for i in range(self.num_classes)]
            out.update({f"iou_{name}": float(v) for name, v in zip(names, iou.tolist())})
        if "instance" in self.tasks:
            out["instance_err_px"] = _ratio(self.instance_abs, self.instance_count)
        if "depth" in self.tasks:
            out["disparity_err_px"] = _ratio(self.disparity_abs, self.disparity_count)
            rmse_sq = _ratio(self.disparity_sq, self.disparity_count)
            out["disparity_rmse_px"] = math.sqrt(rmse_sq) if not math.isnan(rmse_sq) else math.nan
        return out

    def state_tensor(self) -> torch.Tensor:
        """All sums as one float64 vector, so processes can add them with one ``all_reduce``."""
        scalars = torch.tensor(
            [self.instance_abs, self.instance_count, self.disparity_abs, self.disparity_sq, self.disparity_count],
            dtype=torch.float64,
        )
        return torch.cat([self.confusion.flatten(), scalars])

    def load_state_tensor(self, state: torch.Tensor) -> None:
        """Replace the sums with ``state`` (e.g. the sum over processes of ``state_tensor()``)."""
        state = state.detach().to("cpu", torch.float64)
        n2 = self.num_classes * self.num_classes
        self.confusion = state[:n2].reshape(self.num_classes, self.num_classes).clone()
        (self.instance_abs, self.instance_count, self.disparity_abs, self.disparity_sq, self.disparity_count) = (
            state[n2 : n2 + _N_SCALARS].tolist()
        )


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else math.nan
