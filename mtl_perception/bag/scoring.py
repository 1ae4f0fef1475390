"""Accuracy of the perception's published outputs against a bag's ground-truth topics.

What can be scored is what the outputs carry: semantic labels (``miou``, per-class IoU),
disparity (``disparity_err_px``, ``disparity_rmse_px``) and the instance map with its classes
(Cityscapes ``AP``/``AP50``, ranked by the scores in the marker captions when there are
markers; panoptic ``PQ``). ``instance_err_px`` needs the network's raw
centroid vectors, which no output topic carries, so it is not reported here (use
``mtl-perception evaluate`` on the dataset for it).

The metrics are the project's own accumulators (``evaluation.metrics``,
``evaluation.instance_ap``), so a bag evaluation and a dataset evaluation of the same images
at the same resolution give the same numbers. Scoring happens at the bag's resolution: the
pipeline's outputs are at input resolution, where the ground truth lives; the AP's minimum
region size (100 px at 1024 x 2048) is scaled to that resolution.
"""
from __future__ import annotations

import heapq
import math
from typing import Any, Mapping

import numpy as np
import torch

from mtl_perception.data.labels import IGNORE_INDEX, NUM_CLASSES
from mtl_perception.evaluation.instance_ap import InstanceEvaluator, scaled_min_region_size
from mtl_perception.evaluation.metrics import MetricAccumulator
from mtl_perception.postprocess.caption import CAPTION_NAMESPACE, caption_score


def instances_from_map(
    instance_map: np.ndarray, semantic: np.ndarray, scores: Mapping[int, float] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(map relabelled 1..K, train id per instance, score per instance) from published outputs.

    The class of an instance is the majority semantic label of its pixels. ``scores`` maps the
    published instance ids to their scores (the node's marker captions). Without them every
    instance scores 1 and AP has a single operating point; an instance missing from them (no
    marker: no finite depth) scores 0, last in the ranking.
    """
    ids, inverse = np.unique(instance_map, return_inverse=True)
    inverse = inverse.reshape(instance_map.shape)
    offset = 1 if ids.size and ids[0] == 0 else 0  # id 0 = no instance
    relabelled = (inverse + 1 - offset).astype(np.int64)
    if offset:
        relabelled[inverse == 0] = 0
    k = ids.size - offset
    votes = np.zeros((k + 1, 256), dtype=np.int64)
    np.add.at(votes, (relabelled.ravel(), semantic.ravel().astype(np.int64)), 1)
    classes = votes[1:, :NUM_CLASSES].argmax(1) if k else np.zeros(0, np.int64)
    if scores is None:
        return relabelled, classes, np.ones(k)
    return relabelled, classes, np.array([scores.get(int(i), 0.0) for i in ids[offset:]], dtype=np.float64)


def scores_from_markers(markers: Any) -> dict[int, float]:
    """Instance id -> score, read from the captions of a (deserialised) ``instance/markers`` array."""
    scores = {}
    for marker in markers.markers:
        if marker.ns == CAPTION_NAMESPACE and (score := caption_score(marker.text)) is not None:
            scores[int(marker.id)] = score
    return scores


def instances_from_list(
    instance_map: np.ndarray, instance_list: list[Any]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(map relabelled 1..K, train ids, scores) from the pipeline's instance list (id, train_id, score)."""
    lut = np.zeros(int(instance_map.max(initial=0)) + 1, dtype=np.int64)
    kept = [inst for inst in instance_list if 0 < int(inst.id) < lut.size]
    for k, inst in enumerate(kept, start=1):
        lut[int(inst.id)] = k
    classes = np.array([int(inst.train_id) for inst in kept], dtype=np.int64)
    scores = np.array([float(inst.score) for inst in kept], dtype=np.float64)
    return lut[instance_map], classes, scores


class BagScorer:
    """Accumulates per-frame outputs against ground truth; keeps the worst frames for error maps."""

    def __init__(self, num_examples: int = 3) -> None:
        self.semantic = MetricAccumulator(tasks=("semantic",))
        self.disparity = MetricAccumulator(tasks=("depth",))
        self.instances: InstanceEvaluator | None = None
        self.frames_scored = 0
        self.scored = {"semantic": False, "instance": False, "disparity": False}
        self.num_examples = num_examples
        self._examples: list[tuple[float, int, dict[str, Any]]] = []  # min-heap on error

    def add(
        self,
        index: int,
        stamp: int,
        rgb: np.ndarray,
        ground_truth: dict[str, np.ndarray],
        semantic: np.ndarray | None = None,
        instances: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
        disparity: np.ndarray | None = None,
        focal_baseline: float | None = None,
    ) -> None:
        """One frame: predictions (any may be None) and the ground truth the bag has for it;
        ``focal_baseline`` (fx * B of the ground truth, ``BagFrame.focal_baseline``) adds metric-depth scores."""
        if not ground_truth:
            return
        example: dict[str, Any] = {"index": index, "stamp": stamp, "rgb": rgb}
        error = 0.0
        gt_sem = ground_truth.get("semantic")
        if semantic is not None and gt_sem is not None:
            self.semantic.update_semantic(torch.from_numpy(semantic), torch.from_numpy(gt_sem))
            self.scored["semantic"] = True
            valid = gt_sem != IGNORE_INDEX
            error = float((semantic[valid] != gt_sem[valid]).mean()) if valid.any() else 0.0
            example.update(semantic_pred=semantic, semantic_gt=gt_sem)
        gt_disp = ground_truth.get("disparity")
        if disparity is not None and gt_disp is not None:
            valid = np.isfinite(gt_disp)
            self.disparity.update_disparity(
                torch.from_numpy(disparity.astype(np.float32)), torch.from_numpy(np.nan_to_num(gt_disp)), torch.from_numpy(valid),
                None if focal_baseline is None else torch.tensor([focal_baseline]),
            )
            self.scored["disparity"] = True
            if gt_sem is None:
                error = float(np.abs(disparity[valid] - gt_disp[valid]).mean()) if valid.any() else 0.0
            example.update(disparity_pred=disparity, disparity_gt=gt_disp)
        gt_inst = ground_truth.get("instance")
        if instances is not None and gt_inst is not None and semantic is not None:
            if self.instances is None:
                self.instances = InstanceEvaluator(min_region_size=scaled_min_region_size(*gt_inst.shape[:2]))
            instance_map, classes, scores = instances
            self.instances.add(semantic, instance_map, classes, scores, gt_inst)
            self.scored["instance"] = True
        self.frames_scored += 1
        if len(example) > 3 and self.num_examples > 0:
            item = (error, -index, example)
            if len(self._examples) < self.num_examples:
                heapq.heappush(self._examples, item)
            else:
                heapq.heappushpop(self._examples, item)

    def metrics(self) -> dict[str, Any]:
        """The scored metrics (only those with both prediction and ground truth)."""
        out: dict[str, Any] = {}
        if self.scored["semantic"]:
            out.update(self.semantic.compute())
        if self.scored["disparity"]:
            out.update(self.disparity.compute())
        if self.scored["instance"] and self.instances is not None:
            result = self.instances.result()
            out.update({k: result[k] for k in ("AP", "AP50", "PQ", "SQ", "RQ", "PQ_things", "PQ_stuff")})
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in out.items()}

    def examples(self) -> list[dict[str, Any]]:
        """The frames with the largest error (semantic pixel error, else disparity error), by frame index."""
        return sorted((e for _, _, e in self._examples), key=lambda e: e["index"])
