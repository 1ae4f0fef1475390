"""Cityscapes instance AP (IoU 0.5:0.95) and AP50, mirroring ``cityscapesscripts``.

The algorithm is that of ``cityscapesscripts.evaluation.evalInstanceLevelSemanticLabeling``
(``assignGt2Preds`` + ``evaluateMatches`` + ``computeAverages``, without distances, as the
official script runs by default), computed from arrays instead of files:

- Classes: those with ``hasInstances`` and not ``ignoreInEval`` (8 thing classes).
- Ground truth: every id of the gtFine instanceIds map. Ids >= 1000 are instances; ids < 1000
  of a thing class are groups (crowd). Instances under ``min_region_size`` pixels (official:
  100, at 1024 x 2048; pass a scaled value to evaluate at another resolution) and groups are
  not counted, but predictions overlapping them are not penalised.
- Void: pixels whose instanceIds value is the labelId of an ``ignoreInEval`` class.
- Match: IoU = intersection / (gt + prediction - intersection) strictly above the threshold,
  same class. Unmatched predictions are false positives unless the share of their pixels on
  void, on groups or on small instances of their class exceeds the threshold (a small group
  counts twice, as in the official code).
- AP per class and threshold from the step-wise precision-recall curve of the official code;
  a class without ground truth is NaN and left out of the mean; a class with ground truth and
  no prediction scores 0. ``AP`` is the mean over classes and thresholds, ``AP50`` over classes
  at 0.5. One difference: where a class has ground truth and predictions but every prediction
  is ignored and no ground truth is matched, the official code fails on an empty array; here
  that class scores 0.

Predictions come from an instance map, so they are disjoint: a ground-truth instance can then
match at most one prediction above IoU 0.5 and the official double-match branch never applies.

:class:`InstanceEvaluator` adds panoptic quality (:mod:`mtl_perception.evaluation.panoptic`)
so that one object evaluates a dataset: ``add(...)`` per image, ``result()`` at the end.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from cityscapesscripts.helpers.labels import labels as _CS_LABELS

from mtl_perception.data.labels import INSTANCE_ID_DIVISOR, TRAIN_ID_TO_LABEL_ID
from mtl_perception.evaluation.panoptic import PanopticQuality, unique_ids

#: IoU thresholds 0.5, 0.55, ..., 0.95 (official ``args.overlaps``).
OVERLAPS = np.arange(0.5, 1.0, 0.05)
#: Official minimum ground-truth region size (pixels at 1024 x 2048).
MIN_REGION_SIZE = 100
#: Pixels of the images the official minimum region size refers to (1024 x 2048).
CITYSCAPES_PIXELS = 1024 * 2048

_EVAL_LABELS = [l for l in _CS_LABELS if l.hasInstances and not l.ignoreInEval]


def scaled_min_region_size(height: int, width: int) -> int:
    """The official 100-pixel minimum gt region of the AP, scaled from 1024 x 2048 to ``height`` x ``width``.

    The one definition ``evaluate``, ``bag eval`` and ``bench grouping`` share. Rounded and at
    least 1: a region is counted in whole pixels, and 0 would count every sliver of an
    instance that the resize left behind.
    """
    return max(1, round(MIN_REGION_SIZE * height * width / CITYSCAPES_PIXELS))
#: labelIds of the evaluated classes, in the official order.
EVAL_LABEL_IDS: tuple[int, ...] = tuple(l.id for l in _EVAL_LABELS)
EVAL_CLASS_NAMES: tuple[str, ...] = tuple(l.name for l in _EVAL_LABELS)
_VOID_LABEL_IDS = np.array([l.id for l in _CS_LABELS if l.ignoreInEval and l.id >= 0])
_TRAIN_TO_LABEL = np.zeros(256, dtype=np.int64)
_TRAIN_TO_LABEL[: len(TRAIN_ID_TO_LABEL_ID)] = TRAIN_ID_TO_LABEL_ID


@dataclass(frozen=True)
class _Image:
    """What the AP needs of one image: segments, predictions and their intersections."""

    gt_label: np.ndarray  # (G,) labelId of each gt segment of an evaluated class
    gt_group: np.ndarray  # (G,) bool: id < 1000 (crowd)
    gt_pixels: np.ndarray  # (G,)
    pred_label: np.ndarray  # (P,) labelId
    pred_pixels: np.ndarray  # (P,)
    pred_score: np.ndarray  # (P,)
    pred_void: np.ndarray  # (P,) pixels on void
    pair_pred: np.ndarray  # (Q,) index into the predictions, same-class intersecting pairs
    pair_gt: np.ndarray  # (Q,) index into the gt segments
    pair_inter: np.ndarray  # (Q,) intersection in pixels


def _image(
    instance_map: np.ndarray, classes: np.ndarray, scores: np.ndarray, gt_instance_ids: np.ndarray
) -> _Image:
    gt = np.asarray(gt_instance_ids).astype(np.int64, copy=False).ravel()
    pred = np.asarray(instance_map).astype(np.int64, copy=False).ravel()
    if gt.shape != pred.shape:
        raise ValueError(f"instance map {np.shape(instance_map)} and gt {np.shape(gt_instance_ids)} differ in size")
    classes = np.asarray(classes, dtype=np.int64).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    k = len(classes)
    if len(scores) != k or (pred.size and pred.max(initial=0) > k):
        raise ValueError(f"instance map has labels up to {pred.max(initial=0)} but {k} classes and {len(scores)} scores")

    ids, gt_index, gt_pixels = unique_ids(gt)
    gt_label = np.where(ids < INSTANCE_ID_DIVISOR, ids, ids // INSTANCE_ID_DIVISOR)
    evaluated = np.isin(gt_label, EVAL_LABEL_IDS)

    pred_label = _TRAIN_TO_LABEL[classes] if k else np.zeros(0, np.int64)
    pred_pixels = np.bincount(pred, minlength=k + 1)[1:]
    kept = (pred_pixels > 0) & np.isin(pred_label, EVAL_LABEL_IDS)  # official: skip empty / other classes
    void = np.isin(gt, _VOID_LABEL_IDS)
    pred_void = np.bincount(pred[void], minlength=k + 1)[1:]

    on = pred > 0
    pair_code = (pred[on] - 1) * len(ids) + gt_index[on]
    inter = np.bincount(pair_code, minlength=k * len(ids))
    codes = np.flatnonzero(inter)
    inter = inter[codes]
    pair_pred, pair_gt = codes // len(ids), codes % len(ids)
    same = kept[pair_pred] & evaluated[pair_gt] & (pred_label[pair_pred] == gt_label[pair_gt])

    # Renumber predictions and gt segments to the kept ones.
    pred_new = np.cumsum(kept) - 1
    gt_new = np.cumsum(evaluated) - 1
    return _Image(
        gt_label=gt_label[evaluated], gt_group=ids[evaluated] < INSTANCE_ID_DIVISOR, gt_pixels=gt_pixels[evaluated],
        pred_label=pred_label[kept], pred_pixels=pred_pixels[kept], pred_score=scores[kept], pred_void=pred_void[kept],
        pair_pred=pred_new[pair_pred[same]], pair_gt=gt_new[pair_gt[same]], pair_inter=inter[same],
    )


def _average_precision(y_true: np.ndarray, y_score: np.ndarray, hard_fns: int) -> float:
    """Area under the official step-wise precision-recall curve."""
    if y_true.size == 0:
        return 0.0
    order = np.argsort(y_score, kind="stable")
    true_sorted_cumsum = np.cumsum(y_true[order])
    _, unique_index = np.unique(y_score[order], return_index=True)
    n_examples, n_true = len(y_score), true_sorted_cumsum[-1]
    below = np.append(true_sorted_cumsum, 0)[unique_index - 1]  # true examples below each threshold
    tp = n_true - below
    fp = n_examples - unique_index - tp
    fn = below + hard_fns
    precision = np.append(tp / (tp + fp), 1.0)
    recall = np.append(tp / (tp + fn), 0.0)
    widths = np.convolve(np.concatenate([recall[:1], recall, [0.0]]), [-0.5, 0, 0.5], "valid")
    return float(np.dot(precision, widths))


class InstanceAP:
    """Accumulates images; ``result()`` gives AP, AP50 and per-class values (fractions, 0..1)."""

    def __init__(self, min_region_size: float = MIN_REGION_SIZE, overlaps: np.ndarray = OVERLAPS) -> None:
        self.min_region_size = min_region_size
        self.overlaps = np.asarray(overlaps, dtype=np.float64)
        self._images: list[_Image] = []

    def add(self, instance_map: Any, classes: Any, scores: Any, gt_instance_ids: Any) -> None:
        """One image: instance map (H, W) 0 = none, k = instance k; per instance its train id and score;
        the gtFine instanceIds (H, W) at the same resolution."""
        self._images.append(_image(instance_map, classes, scores, gt_instance_ids))

    def _concatenated(self) -> _Image:
        """All images as one, pair indices made global."""
        if not self._images:
            empty = np.zeros(0, dtype=np.int64)
            return _Image(*([empty] * len(fields(_Image))))
        pred_offset = np.cumsum([0] + [len(im.pred_label) for im in self._images[:-1]])
        gt_offset = np.cumsum([0] + [len(im.gt_label) for im in self._images[:-1]])
        joined = {f.name: np.concatenate([getattr(im, f.name) for im in self._images]) for f in fields(_Image)}
        joined["pair_pred"] = np.concatenate([im.pair_pred + o for im, o in zip(self._images, pred_offset)])
        joined["pair_gt"] = np.concatenate([im.pair_gt + o for im, o in zip(self._images, gt_offset)])
        return _Image(**joined)

    def ap_matrix(self) -> np.ndarray:
        """(classes, overlaps) AP, NaN for a class without ground truth."""
        im = self._concatenated()
        group = im.gt_group.astype(bool)
        inter = im.pair_inter.astype(np.float64)
        gt_pixels, pred_pixels = im.gt_pixels.astype(np.float64), im.pred_pixels.astype(np.float64)
        small = gt_pixels < self.min_region_size
        counted = ~group & ~small
        iou = inter / (gt_pixels[im.pair_gt] + pred_pixels[im.pair_pred] - inter)
        # Pixels of each prediction on void, groups and small instances (a small group counts twice).
        weight = group[im.pair_gt].astype(np.float64) + small[im.pair_gt]
        ignored = im.pred_void + np.bincount(im.pair_pred, weights=inter * weight, minlength=len(pred_pixels))
        ignored_share = ignored / np.maximum(pred_pixels, 1)

        ap = np.full((len(EVAL_LABEL_IDS), len(self.overlaps)), np.nan)
        for c, label in enumerate(EVAL_LABEL_IDS):
            gt_of_class = (im.gt_label == label) & counted
            preds_of_class = im.pred_label == label
            if not gt_of_class.any():
                continue
            if not preds_of_class.any():
                ap[c] = 0.0
                continue
            for o, threshold in enumerate(self.overlaps):
                match = iou > threshold
                # Disjoint predictions: at most one match per gt and per prediction (module doc).
                tp = match & gt_of_class[im.pair_gt]
                matched_gt = np.zeros(len(gt_pixels), dtype=bool)
                matched_gt[im.pair_gt[tp]] = True
                found = np.zeros(len(pred_pixels), dtype=bool)
                found[im.pair_pred[match]] = True
                fp = preds_of_class & ~found & (ignored_share <= threshold)
                tp_scores, fp_scores = im.pred_score[im.pair_pred[tp]], im.pred_score[fp]
                y_true = np.concatenate([np.ones(len(tp_scores)), np.zeros(len(fp_scores))])
                y_score = np.concatenate([tp_scores, fp_scores])
                ap[c, o] = _average_precision(y_true, y_score, int(np.count_nonzero(gt_of_class & ~matched_gt)))
        return ap

    def result(self) -> dict[str, Any]:
        ap = self.ap_matrix()
        o50 = int(np.argmin(np.abs(self.overlaps - 0.5)))
        return {
            "AP": _nanmean(ap),
            "AP50": _nanmean(ap[:, o50]),
            "per_class": {
                name: {"AP": _num(np.mean(ap[c])), "AP50": _num(ap[c, o50])} for c, name in enumerate(EVAL_CLASS_NAMES)
            },
        }


def _nanmean(values: np.ndarray) -> float | None:
    """Mean over the classes that have ground truth (official ``np.nanmean``); None if none has."""
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else None


def _num(value: float) -> float | None:
    """JSON-friendly number: NaN (nothing to evaluate) becomes None."""
    value = float(value)
    return None if math.isnan(value) else value


class InstanceEvaluator:
    """Instance AP/AP50 and panoptic PQ/SQ/RQ over a dataset, from arrays.

    ``add`` takes one image's predicted semantic train ids (H, W), instance map (H, W), per
    instance its train id and score, and the gtFine instanceIds (H, W), all at one resolution
    (torch CPU tensors work too). ``result()`` returns fractions (0..1), as cityscapesscripts
    does: ``{"AP", "AP50", "PQ", "SQ", "RQ", "PQ_things", "PQ_stuff", "per_class"}``; a value
    with nothing to evaluate is None.
    """

    def __init__(self, min_region_size: float = MIN_REGION_SIZE) -> None:
        self.ap = InstanceAP(min_region_size=min_region_size)
        self.pq = PanopticQuality()

    def add(self, semantic: Any, instance_map: Any, classes: Any, scores: Any, gt_instance_ids: Any) -> None:
        self.ap.add(instance_map, classes, scores, gt_instance_ids)
        self.pq.add(semantic, instance_map, classes, gt_instance_ids)

    def result(self) -> dict[str, Any]:
        ap, pq = self.ap.result(), self.pq.result()
        per_class = {name: dict(values) for name, values in pq["per_class"].items()}
        for name, values in ap["per_class"].items():
            per_class[name].update(values)
        return {
            "AP": ap["AP"], "AP50": ap["AP50"], "PQ": pq["PQ"], "SQ": pq["SQ"], "RQ": pq["RQ"],
            "PQ_things": pq["PQ_things"], "PQ_stuff": pq["PQ_stuff"], "per_class": per_class,
        }
