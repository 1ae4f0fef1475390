"""Instance AP and PQ: cross-checked against cityscapesscripts' official evaluators.

Predictions are written in the official results format by CityscapesResultsWriter and the
official scripts run on them (driven programmatically on a tiny gtFine set in tmp_path);
the project's numbers must agree with theirs.
"""
from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from mtl_perception.data.labels import LABEL_ID_TO_TRAIN_ID, THING_TRAIN_IDS, train_id
from mtl_perception.errors import UserError
from mtl_perception.evaluation.cityscapes_results import CityscapesResultsWriter
from mtl_perception.evaluation.instance_ap import EVAL_CLASS_NAMES, InstanceAP, InstanceEvaluator
from mtl_perception.evaluation.panoptic import PanopticQuality, panoptic_prediction

H, W = 96, 192


def _gt_scene(rng: np.random.Generator) -> np.ndarray:
    """gtFine instanceIds: stuff, void, crowd, instances (some occluded or under 100 px), a caravan."""
    ids = np.full((H, W), 7, np.int32)  # road
    ids[: H // 3] = 11  # building
    ids[: H // 8] = 23  # sky
    ids[:, :6] = 0  # unlabeled (void)
    ids[H - 6 :] = 1  # ego vehicle (void)
    ids[H // 3 : H // 3 + 6, W // 2 : W // 2 + 30] = 4  # static (void)
    ids[50:70, 150:185] = 26  # car group (crowd)
    ids[20:40, 100:120] = 24  # person group (crowd)
    labels = [26, 26, 26, 24, 24, 25, 33, 27, 28, 32, 24, 26, 29]
    for k, label in enumerate(labels, start=1):
        small = k in (11, 12)
        hh, ww = (rng.integers(5, 9), rng.integers(6, 11)) if small else (rng.integers(10, 30), rng.integers(10, 40))
        y0, x0 = rng.integers(0, H - hh), rng.integers(0, W - ww)
        ids[y0 : y0 + hh, x0 : x0 + ww] = label * 1000 + k
    return ids


def _train_ids(gt: np.ndarray) -> np.ndarray:
    label = np.where(gt >= 1000, gt // 1000, gt)
    return LABEL_ID_TO_TRAIN_ID[label].astype(np.int64)


def _prediction(gt: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(semantic, instance map, classes, scores): gt perturbed in every way the matching cares about."""
    semantic = _train_ids(gt)
    y, x = rng.integers(0, H - 10), rng.integers(0, W - 10)
    semantic[y : y + 10, x : x + 10] = rng.integers(0, 19)
    instance_map = np.zeros((H, W), np.int64)
    classes: list[int] = []

    def put(mask: np.ndarray, cls: int) -> None:
        classes.append(cls)
        instance_map[mask & (instance_map == 0)] = len(classes)

    segments = [i for i in np.unique(gt) if i >= 1000 or i in (24, 26)]
    for seg in segments:
        mask = gt == seg
        cls = int(LABEL_ID_TO_TRAIN_ID[seg // 1000 if seg >= 1000 else seg])
        if cls == 255:  # caravan: not a train class, predicted as a car sometimes
            cls = train_id("car")
        action = rng.integers(0, 7)
        if action == 0:
            continue  # missed
        if action == 1:
            mask = np.roll(mask, (rng.integers(-3, 4), rng.integers(-6, 7)), axis=(0, 1))
        elif action == 2:
            mask = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=int(rng.integers(1, 4))) > 0
        elif action == 3:
            cls = int(rng.choice(THING_TRAIN_IDS))
        elif action == 4:
            cols = np.flatnonzero(mask.any(axis=0))
            half = mask & (np.arange(W)[None, :] < cols[len(cols) // 2])
            put(half, cls)
            mask = mask & ~half
        put(mask, cls)
    for _ in range(4):  # false positives: on void, on crowd, anywhere
        y, x = rng.integers(0, H - 12), rng.integers(0, W - 12)
        box = np.zeros((H, W), bool)
        box[y : y + rng.integers(4, 12), x : x + rng.integers(4, 12)] = True
        put(box, int(rng.choice(THING_TRAIN_IDS)))
    ego = np.zeros((H, W), bool)
    ego[H - 6 :, 40:70] = True
    put(ego, train_id("car"))
    crowd = np.zeros((H, W), bool)
    crowd[52:68, 152:180] = True
    put(crowd, train_id("car"))
    scores = rng.choice(np.round(np.linspace(0.1, 1.0, 10), 1), size=len(classes))  # ties on purpose
    return semantic, instance_map, np.array(classes, np.int64), scores


def _dataset(tmp_path: Path, seed: int, images: int = 3):
    rng = np.random.default_rng(seed)
    gt_dir = tmp_path / "gtFine" / "val" / "testcity"
    gt_dir.mkdir(parents=True)
    gt_files, evaluator = [], InstanceEvaluator()
    with CityscapesResultsWriter(tmp_path / "results") as writer:
        for i in range(images):
            stem = f"testcity_{i:06d}_000019"
            gt = _gt_scene(rng)
            gt_file = gt_dir / f"{stem}_gtFine_instanceIds.png"
            cv2.imwrite(str(gt_file), gt.astype(np.uint16))
            gt_files.append(str(gt_file))
            semantic, instance_map, classes, scores = _prediction(gt, rng)
            writer.add(stem, semantic, instance_map, classes, scores)
            evaluator.add(semantic, instance_map, classes, scores, gt)
    return gt_files, evaluator


def _official_instance_ap(gt_files: list[str], results: Path, tmp_path: Path, monkeypatch) -> dict:
    import cityscapesscripts.evaluation.evalInstanceLevelSemanticLabeling as official

    # Written for numpy 1: it calls np.in1d (removed in numpy 2.4; np.isin is its successor) and
    # dumps its debug files (matches.json, a gt cache) with a JSON encoder that fails on numpy
    # 2 integers. The dumps are not read back within one run, so they are skipped.
    monkeypatch.setattr(np, "in1d", lambda a, b: np.isin(a, b).ravel(), raising=False)
    monkeypatch.setattr(official, "writeDict2JSON", lambda data, path: None)
    args = copy.copy(official.args)
    args.gtInstancesFile = str(tmp_path / "gtInstances.json")  # never read: the dump is skipped
    args.predictionPath = os.path.abspath(results / "instance")
    args.predictionWalk = None
    args.JSONOutput, args.quiet, args.colorized = False, True, False
    predictions = [official.getPrediction(gt, args) for gt in gt_files]
    return official.evaluateImgLists(predictions, gt_files, args)


def _official_pq(tmp_path: Path, results: Path) -> dict:
    from cityscapesscripts.evaluation.evalPanopticSemanticLabeling import evaluatePanoptic
    from cityscapesscripts.preparation.createPanopticImgs import convert2panoptic

    convert2panoptic(cityscapesPath=str(tmp_path / "gtFine"), outputFolder=str(tmp_path / "gtFine"), setNames=["val"])
    gt_json = tmp_path / "gtFine" / "cityscapes_panoptic_val.json"
    pred_json = results / "panoptic" / "cityscapes_panoptic_val.json"
    return evaluatePanoptic(
        str(gt_json), str(gt_json.with_suffix("")), str(pred_json), str(pred_json.with_suffix("")),
        str(tmp_path / "resultPanoptic.json"),
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ap_and_pq_agree_with_official_scripts(tmp_path, monkeypatch, seed):
    gt_files, evaluator = _dataset(tmp_path, seed)
    ours = evaluator.result()
    official = _official_instance_ap(gt_files, tmp_path / "results", tmp_path, monkeypatch)
    np.testing.assert_allclose(
        evaluator.ap.ap_matrix(), np.array(official["resultApMatrix"], dtype=float)[0], atol=1e-6, equal_nan=True
    )
    assert ours["AP"] == pytest.approx(official["averages"]["allAp"], abs=1e-3)
    assert ours["AP50"] == pytest.approx(official["averages"]["allAp50%"], abs=1e-3)
    assert 0.05 < ours["AP"] < 0.95, "the perturbed predictions must exercise both hits and misses"

    pq = _official_pq(tmp_path, tmp_path / "results")
    assert ours["PQ"] == pytest.approx(pq["All"]["pq"], abs=1e-3)
    assert ours["SQ"] == pytest.approx(pq["All"]["sq"], abs=1e-3)
    assert ours["RQ"] == pytest.approx(pq["All"]["rq"], abs=1e-3)
    assert ours["PQ_things"] == pytest.approx(pq["Things"]["pq"], abs=1e-3)
    assert ours["PQ_stuff"] == pytest.approx(pq["Stuff"]["pq"], abs=1e-3)


def test_perfect_prediction_scores_one():
    gt = _gt_scene(np.random.default_rng(5))
    ids = [i for i in np.unique(gt) if i >= 1000 and LABEL_ID_TO_TRAIN_ID[i // 1000] != 255]
    instance_map = np.zeros_like(gt, dtype=np.int64)
    for k, i in enumerate(ids, start=1):
        instance_map[gt == i] = k
    classes = LABEL_ID_TO_TRAIN_ID[np.array(ids) // 1000]
    evaluator = InstanceEvaluator()
    evaluator.add(_train_ids(gt), instance_map, classes, np.linspace(0.2, 0.9, len(ids)), gt)
    result = evaluator.result()
    assert result["AP"] == pytest.approx(1.0) and result["AP50"] == pytest.approx(1.0)
    assert result["PQ"] == pytest.approx(1.0) and result["SQ"] == pytest.approx(1.0)
    assert result["per_class"]["train"]["AP"] is None  # no ground truth: left out, not 0
    assert json.dumps(result)  # JSON-ready (no NaN)


def test_no_prediction_and_no_ground_truth():
    gt = np.full((H, W), 7, np.int32)
    gt[10:40, 10:50] = 26001
    ap = InstanceAP()
    ap.add(np.zeros((H, W), np.int64), [], [], gt)
    result = ap.result()
    assert result["AP"] == 0.0 and result["per_class"]["car"]["AP"] == 0.0
    empty = InstanceAP()
    empty.add(np.zeros((H, W), np.int64), [], [], np.full((H, W), 7))
    assert empty.result()["AP"] is None
    pq = PanopticQuality()
    pq.add(np.zeros((H, W), np.int64), np.zeros((H, W), np.int64), [], np.full((H, W), 7))
    assert pq.result()["PQ"] == pytest.approx(1.0) and pq.result()["PQ_things"] is None


def test_min_region_size_ignores_small_ground_truth():
    gt = np.full((H, W), 7, np.int32)
    gt[10:20, 10:15] = 26001  # 50 px
    ap = InstanceAP()
    pred = np.zeros((H, W), np.int64)
    pred[10:20, 10:15] = 1
    ap.add(pred, [train_id("car")], [0.5], gt)
    assert ap.result()["AP"] is None  # not counted, and its exact match is no false positive
    scaled = InstanceAP(min_region_size=25)
    scaled.add(pred, [train_id("car")], [0.5], gt)
    assert scaled.result()["AP"] == pytest.approx(1.0)


def test_panoptic_prediction_segments():
    semantic = np.full((4, 6), train_id("road"))
    semantic[:, :2] = train_id("car")
    semantic[0, 5] = 255
    instance_map = np.zeros((4, 6), np.int64)
    instance_map[:2, :2] = 1
    pan, ids, category = panoptic_prediction(semantic, instance_map, [train_id("car")])
    assert ids.tolist() == [7, 1001] and category.tolist() == [7, 26]
    assert pan[3, 0] == 0 and pan[0, 5] == 0  # car pixel without instance, ignore: VOID


def test_writer_rejects_bad_stem_and_writes_label_ids(tmp_path):
    writer = CityscapesResultsWriter(tmp_path)
    with pytest.raises(UserError, match="image name"):
        writer.add("a b", np.zeros((2, 2)), np.zeros((2, 2)), [], [])
    semantic = np.array([[0, 255], [13, 18]])
    writer.add("x_000000_000000", semantic, np.zeros((2, 2)), [], [])
    png = cv2.imread(str(tmp_path / "semantic" / "x_000000_000000_pred_labelIds.png"), cv2.IMREAD_UNCHANGED)
    assert png.tolist() == [[7, 0], [26, 33]]
    assert (tmp_path / "instance" / "x_000000_000000_pred.txt").read_text() == ""
    assert EVAL_CLASS_NAMES == ("person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle")
