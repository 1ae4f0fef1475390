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

Depth in metres, as users of other monocular depth models read it (Eigen et al. 2014;
KITTI / Cityscapes depth benchmarks), when the camera's ``fx * baseline`` is known:
``depth_abs_rel`` = mean |Z - Z*| / Z*, ``depth_rmse_m`` = sqrt(mean (Z - Z*)^2) and
``delta1`` = share of pixels with max(Z / Z*, Z* / Z) < 1.25, with Z = fx B / d. They are
taken over the valid disparity pixels whose true depth is at most ``MAX_DEPTH_M`` (sky, d* = 0,
has no finite depth); the prediction is clipped to [``MIN_DEPTH_M``, ``MAX_DEPTH_M``], so a
disparity <= 0 reads as the far limit, the benchmarks' convention.
"""
from __future__ import annotations

import math
from typing import Iterable

import torch

from mtl_perception.data.labels import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES
from mtl_perception.evaluation.metric_names import LOWER_IS_BETTER

#: Depth range of the metric-depth scores (metres): the usual 80 m cap of driving benchmarks.
MIN_DEPTH_M, MAX_DEPTH_M = 1e-3, 80.0

# Layout of the flat float64 state: confusion matrix, then the scalars named in _SCALARS.
_SCALARS = (
    "instance_abs", "instance_count", "disparity_abs", "disparity_sq", "disparity_count",
    "depth_rel", "depth_sq", "depth_delta1", "depth_count",
)
_N_SCALARS = len(_SCALARS)


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
        self.depth_rel = 0.0  # sum of |Z - Z*| / Z*
        self.depth_sq = 0.0  # sum of (Z - Z*)^2, m^2
        self.depth_delta1 = 0.0  # pixels with max(Z/Z*, Z*/Z) < 1.25
        self.depth_count = 0.0

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
    def update_disparity(
        self, pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor, focal_baseline: torch.Tensor | None = None
    ) -> None:
        """Add predicted and target disparity (B,H,W), in pixels, over ``mask`` (B,H,W) pixels.

        ``focal_baseline`` (B,) is fx * B per image (pixels x metres, fx at this width): with
        it the metric-depth scores are accumulated too.
        """
        err = (pred.float() - gt.float())[mask].double()
        self.disparity_abs += err.abs().sum().item()
        self.disparity_sq += err.square().sum().item()
        self.disparity_count += float(mask.sum().item())
        if focal_baseline is not None:
            self._update_depth(pred, gt, mask, focal_baseline)

    def _update_depth(self, pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor, focal_baseline: torch.Tensor) -> None:
        fb = focal_baseline.to(device=pred.device, dtype=torch.float64)
        fb = fb.reshape(-1, *[1] * (pred.dim() - 1)).expand_as(pred)  # one value per image; (H, W) is one image
        gt, pred = gt.double(), pred.double()
        true = fb / gt.clamp_min(1e-12)
        valid = mask & (gt > 0) & (true <= MAX_DEPTH_M)
        true, fb, d = true[valid], fb[valid], pred[valid]
        depth = torch.where(d > 0, fb / d.clamp_min(1e-12), MAX_DEPTH_M).clamp(MIN_DEPTH_M, MAX_DEPTH_M)
        self.depth_rel += ((depth - true).abs() / true).sum().item()
        self.depth_sq += (depth - true).square().sum().item()
        self.depth_delta1 += float((torch.maximum(depth / true, true / depth) < 1.25).sum().item())
        self.depth_count += float(valid.sum().item())

    def update(self, outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> None:
        """Add one batch of network ``outputs`` (model forward dict) against a dataset ``batch``."""
        if "semantic" in outputs:
            self.update_semantic(outputs["semantic"].argmax(1), batch["semantic"].to(outputs["semantic"].device))
        if "instance" in outputs:
            dev = outputs["instance"].device
            self.update_instance(outputs["instance"], batch["instance"].to(dev), batch["instance_mask"].to(dev))
        if "depth" in outputs:
            dev = outputs["depth"].device
            fb = batch["fx"] * batch["baseline"] if "fx" in batch and "baseline" in batch else None
            self.update_disparity(outputs["depth"][:, 0], batch["disparity"].to(dev), batch["disparity_mask"].to(dev), fb)

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
            if self.depth_count > 0:
                out["depth_abs_rel"] = self.depth_rel / self.depth_count
                out["depth_rmse_m"] = math.sqrt(self.depth_sq / self.depth_count)
                out["delta1"] = self.depth_delta1 / self.depth_count
        return out

    def state_tensor(self) -> torch.Tensor:
        """All sums as one float64 vector, so processes can add them with one ``all_reduce``."""
        scalars = torch.tensor([getattr(self, name) for name in _SCALARS], dtype=torch.float64)
        return torch.cat([self.confusion.flatten(), scalars])

    def load_state_tensor(self, state: torch.Tensor) -> None:
        """Replace the sums with ``state`` (e.g. the sum over processes of ``state_tensor()``)."""
        state = state.detach().to("cpu", torch.float64)
        n2 = self.num_classes * self.num_classes
        self.confusion = state[:n2].reshape(self.num_classes, self.num_classes).clone()
        for name, value in zip(_SCALARS, state[n2 : n2 + _N_SCALARS].tolist()):
            setattr(self, name, value)


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else math.nan
