"""Table-1 metrics against values worked out by hand, and accumulation over batches."""
from __future__ import annotations

import math

import pytest
import torch

from mtl_perception.data.labels import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES
from mtl_perception.evaluation.metrics import MetricAccumulator


def test_miou_from_a_known_confusion_matrix():
    # gt:   [0 0 0 1 | 1 2 255 2]   pred: [0 0 1 1 | 2 2 0 5]
    # confusion (rows gt): class 0: 2 right, 1 -> class 1; class 1: 1 right, 1 -> 2; class 2: 1 right, 1 -> 5.
    # IoU0 = 2 / (3 + 2 - 2) = 2/3; IoU1 = 1 / (2 + 2 - 1) = 1/3; IoU2 = 1 / (2 + 2 - 1) = 1/3;
    # IoU5 = 0 / (0 + 1 - 0) = 0 (predicted, never true); all other classes absent: NaN, left out.
    gt = torch.tensor([[0, 0, 0, 1], [1, 2, IGNORE_INDEX, 2]])
    pred = torch.tensor([[0, 0, 1, 1], [2, 2, 0, 5]])
    acc = MetricAccumulator(tasks=["semantic"])
    acc.update_semantic(pred, gt)
    m = acc.compute()
    assert m[f"iou_{CLASS_NAMES[0]}"] == pytest.approx(2 / 3)
    assert m[f"iou_{CLASS_NAMES[1]}"] == pytest.approx(1 / 3)
    assert m[f"iou_{CLASS_NAMES[2]}"] == pytest.approx(1 / 3)
    assert m[f"iou_{CLASS_NAMES[5]}"] == 0.0
    assert math.isnan(m[f"iou_{CLASS_NAMES[7]}"])
    assert m["miou"] == pytest.approx((2 / 3 + 1 / 3 + 1 / 3 + 0) / 4)
    assert sum(1 for k in m if k.startswith("iou_")) == NUM_CLASSES
    assert set(m) == {"miou", *(f"iou_{c}" for c in CLASS_NAMES)}


def test_regression_errors_use_only_masked_pixels():
    # Instance vectors on 2 labelled pixels: errors (|1|, |2|) and (|0|, |3|) -> 6 / 4 components = 1.5.
    pred_v = torch.zeros(1, 2, 1, 3)
    gt_v = torch.zeros(1, 2, 1, 3)
    gt_v[0, :, 0, 0] = torch.tensor([1.0, -2.0])
    gt_v[0, :, 0, 1] = torch.tensor([0.0, 3.0])
    pred_v[0, :, 0, 2] = 100.0  # not labelled: ignored
    mask_v = torch.tensor([[[True, True, False]]])
    # Disparity: errors 1, 3 on valid pixels (the 50 is invalid): MAE 2, RMSE sqrt(5).
    pred_d = torch.tensor([[[1.0, 5.0, 50.0]]])
    gt_d = torch.tensor([[[2.0, 2.0, 0.0]]])
    mask_d = torch.tensor([[[True, True, False]]])
    acc = MetricAccumulator(tasks=["instance", "depth"])
    acc.update_instance(pred_v, gt_v, mask_v)
    acc.update_disparity(pred_d, gt_d, mask_d)
    m = acc.compute()
    assert m == pytest.approx({"instance_err_px": 1.5, "disparity_err_px": 2.0, "disparity_rmse_px": math.sqrt(5)})


def test_metric_depth_from_disparity_with_the_ground_truths_camera():
    # fx * B = 100 px m. Valid pixels: d* = 10, 4, 1 -> Z* = 10, 25, 100 m; the last is beyond
    # the 80 m cap (left out), the fourth is sky (d* = 0: no finite depth, left out).
    # Predictions d = 8, 5 -> Z = 12.5, 20 m: abs_rel = (2.5/10 + 5/25) / 2 = 0.225,
    # rmse = sqrt((2.5^2 + 5^2) / 2), delta1: 12.5/10 = 1.25 is not < 1.25, 25/20 = 1.25 neither -> 0.
    # A fifth pixel predicts d = 0 (sky) where Z* = 50: clipped to 80 m -> rel 0.6, ratio 1.6.
    pred = torch.tensor([[[8.0, 5.0, 1.0, 3.0, 0.0, 10.0]]])
    gt = torch.tensor([[[10.0, 4.0, 1.0, 0.0, 2.0, 10.0]]])
    mask = torch.tensor([[[True, True, True, True, True, True]]])
    acc = MetricAccumulator(tasks=["depth"])
    acc.update_disparity(pred, gt, mask, focal_baseline=torch.tensor([100.0]))
    m = acc.compute()
    # Pixels scored: Z* = 10, 25, 50 (pred 80), 10 (pred 10, exact).
    assert m["depth_abs_rel"] == pytest.approx((0.25 + 0.2 + 0.6 + 0.0) / 4)
    assert m["depth_rmse_m"] == pytest.approx(math.sqrt((2.5**2 + 5**2 + 30**2 + 0) / 4))
    assert m["delta1"] == pytest.approx(1 / 4)
    # Without a camera there is no metric depth, only the disparity errors.
    plain = MetricAccumulator(tasks=["depth"])
    plain.update_disparity(pred, gt, mask)
    assert not {"depth_abs_rel", "depth_rmse_m", "delta1"} & set(plain.compute())
    # The state vector carries the depth sums (processes add them with all_reduce).
    copy = MetricAccumulator(tasks=["depth"])
    copy.load_state_tensor(acc.state_tensor())
    assert copy.compute() == pytest.approx(m)


def test_batches_are_pooled_by_pixel_not_averaged_per_batch():
    # Batch 1: 1 valid pixel, error 4. Batch 2: 3 valid pixels, error 0 each.
    # Pooled MAE = 4 / 4 = 1 (a mean of batch means would give 2).
    acc = MetricAccumulator(tasks=["depth"])
    acc.update_disparity(torch.tensor([[[4.0, 9.0]]]), torch.zeros(1, 1, 2), torch.tensor([[[True, False]]]))
    acc.update_disparity(torch.ones(1, 1, 3), torch.ones(1, 1, 3), torch.ones(1, 1, 3, dtype=torch.bool))
    assert acc.compute()["disparity_err_px"] == pytest.approx(1.0)
    # Confusion matrices add up the same way: class 0 right once in each batch, wrong once in the first.
    sem = MetricAccumulator(tasks=["semantic"])
    sem.update_semantic(torch.tensor([0, 1]), torch.tensor([0, 0]))
    sem.update_semantic(torch.tensor([0]), torch.tensor([0]))
    iou = sem.per_class_iou()
    assert iou[0].item() == pytest.approx(2 / 3) and iou[1].item() == 0.0


def test_task_without_valid_pixels_is_nan_not_an_error():
    acc = MetricAccumulator(tasks=["semantic", "instance", "depth"])
    acc.update_instance(torch.ones(1, 2, 2, 2), torch.zeros(1, 2, 2, 2), torch.zeros(1, 2, 2, dtype=torch.bool))
    m = acc.compute()
    assert math.isnan(m["miou"]) and math.isnan(m["instance_err_px"]) and math.isnan(m["disparity_rmse_px"])


def test_update_from_network_outputs_and_state_round_trip():
    logits = torch.zeros(1, NUM_CLASSES, 1, 2)
    logits[0, 3, 0, 0] = 1.0  # argmax 3
    logits[0, 4, 0, 1] = 1.0  # argmax 4
    outputs = {"semantic": logits, "instance": torch.zeros(1, 2, 1, 2), "depth": torch.full((1, 1, 1, 2), 2.0)}
    batch = {
        "semantic": torch.tensor([[[3, 3]]]),
        "instance": torch.ones(1, 2, 1, 2),
        "instance_mask": torch.tensor([[[True, False]]]),
        "disparity": torch.tensor([[[1.0, 4.0]]]),
        "disparity_mask": torch.ones(1, 1, 2, dtype=torch.bool),
    }
    acc = MetricAccumulator()
    acc.update(outputs, batch)
    m = acc.compute()
    assert m["miou"] == pytest.approx((0.5 + 0.0) / 2)  # class 3: IoU 1/2; class 4: 0
    assert m["instance_err_px"] == pytest.approx(1.0)
    assert m["disparity_err_px"] == pytest.approx(1.5)
    # Summing two processes' states equals one accumulator that saw both halves.
    twice = MetricAccumulator()
    twice.load_state_tensor(acc.state_tensor() * 2)
    assert twice.compute() == pytest.approx(m, nan_ok=True)
    assert twice.confusion.sum().item() == 4
