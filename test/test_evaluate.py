"""``mtl-perception evaluate``: JSON keys, table, defaults, and values checked against the data.

The model is a real ``MultiTaskNet`` whose output convolutions are zeroed with constant biases,
so it predicts "road", a zero instance vector and a constant disparity everywhere; the
expected metrics then follow from the dataset's targets alone. AP, PQ and the Cityscapes
results are checked with an oracle network that returns the ground truth, and the backends
with the inference tests' tiny checkpoint, whose outputs have realistic sizes (a freshly
initialised network outputs values near 0, which any two backends would agree on).
"""
from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from inference_helpers import shared_checkpoint, shared_onnx
from mtl_perception.cli import main
from mtl_perception.data.cityscapes import CityscapesDataset
from mtl_perception.data.labels import (
    CLASS_NAMES, IGNORE_INDEX, LABEL_ID_TO_TRAIN_ID, NUM_CLASSES, TRAIN_ID_TO_LABEL_ID, train_id,
)
from mtl_perception.evaluation.cityscapes_results import CityscapesResultsWriter
from mtl_perception.evaluation.evaluator import InstanceScoring, accumulate
from mtl_perception.evaluation.instance_ap import scaled_min_region_size
from mtl_perception.evaluation.instance_ap import EVAL_LABEL_IDS
from mtl_perception.inference import factory
from mtl_perception.model import build_model
from mtl_perception.postprocess.grouping import build_grouper

DISPARITY = 3.0
HEIGHT, WIDTH = 32, 64


@pytest.fixture(scope="module")
def constant_model(tmp_path_factory):
    cfg = {"backbone": "resnet18", "output_stride": 16, "aspp_channels": 8, "decoder_channels": 8}
    model = build_model(cfg)
    with torch.no_grad():
        for task, bias in (("semantic", None), ("instance", 0.0), ("depth", DISPARITY)):
            head = model.decoders[task][-1]
            head.weight.zero_()
            head.bias.fill_(bias if bias is not None else 0.0)
        model.decoders["semantic"][-1].bias[train_id("road")] = 10.0
    path = tmp_path_factory.mktemp("model") / "constant.pt"
    config = {"model": {**cfg, "backbone_weights": None}, "data": {"height": HEIGHT, "width": WIDTH}}
    torch.save({"config": config, "model": model.state_dict()}, path)
    return path


def expected_metrics(root) -> dict[str, float]:
    """Metrics of the constant model, from the targets."""
    ds = CityscapesDataset(root, "val", (HEIGHT, WIDTH))
    samples = [ds[i] for i in range(len(ds))]
    sem = torch.stack([s["semantic"] for s in samples])
    valid = sem != IGNORE_INDEX
    road = train_id("road")
    classes_in_gt = sem[valid].unique().tolist()
    iou_road = (sem == road).sum().item() / valid.sum().item()  # predicted road on every valid pixel
    mask_i = torch.stack([s["instance_mask"] for s in samples])
    vec = torch.stack([s["instance"] for s in samples])
    mask_d = torch.stack([s["disparity_mask"] for s in samples])
    disp = torch.stack([s["disparity"] for s in samples])
    err = (disp[mask_d] - DISPARITY).double()
    # Metric depth: Z = fx B / d with each image's camera, true depth up to 80 m, sky (d* = 0) left out.
    fb = torch.stack([s["fx"] * s["baseline"] for s in samples]).double().reshape(-1, 1, 1).expand_as(disp)
    true = fb / disp.double().clamp_min(1e-12)
    scored = mask_d & (disp > 0) & (true <= 80.0)
    true, pred = true[scored], fb[scored] / DISPARITY
    return {
        "miou": iou_road / len(classes_in_gt),  # every other class present in gt has IoU 0
        "iou_road": iou_road,
        "classes_in_gt": len(classes_in_gt),
        "instance_err_px": vec.permute(1, 0, 2, 3)[:, mask_i].abs().double().mean().item(),
        "disparity_err_px": err.abs().mean().item(),
        "disparity_rmse_px": err.square().mean().sqrt().item(),
        "depth_abs_rel": ((pred - true).abs() / true).mean().item(),
        "depth_rmse_m": (pred - true).square().mean().sqrt().item(),
        "delta1": (torch.maximum(pred / true, true / pred) < 1.25).double().mean().item(),
    }


def test_evaluate_writes_table_1_metrics_as_json(synth_root, constant_model, tmp_path, capsys):
    out = tmp_path / "metrics.json"
    assert main(["evaluate", "--data", str(synth_root), "--model", str(constant_model), "--json", str(out),
                 "--workers", "0", "--device", "cpu"]) == 0
    report = json.loads(out.read_text())
    expected = expected_metrics(synth_root)
    assert {"miou", "instance_err_px", "disparity_err_px", "disparity_rmse_px"} <= report.keys()
    assert {f"iou_{c}" for c in CLASS_NAMES} <= report.keys()
    # Size defaults to the model's training size; the split to val.
    assert (report["height"], report["width"], report["split"], report["images"]) == (HEIGHT, WIDTH, "val", 4)
    for key in ("miou", "iou_road", "instance_err_px", "disparity_err_px", "disparity_rmse_px", "depth_abs_rel",
                "depth_rmse_m", "delta1"):
        assert report[key] == pytest.approx(expected[key], rel=1e-5), key
    present = [v for k, v in report.items() if k.startswith("iou_")]
    assert sum(v is not None for v in present) == expected["classes_in_gt"]  # absent classes: null
    assert expected["instance_err_px"] > 0 and expected["disparity_err_px"] > 0  # non-trivial checks
    # No thing class is predicted: every class with ground truth scores AP 0; PQ is a fraction.
    assert report["AP"] == 0.0 and report["AP50"] == 0.0
    per_class_ap = {k: v for k, v in report.items() if k.startswith("AP_")}
    assert set(per_class_ap) == {"AP_person", "AP_rider", "AP_car", "AP_truck", "AP_bus", "AP_train", "AP_motorcycle", "AP_bicycle"}
    assert all(v in (0.0, None) for v in per_class_ap.values()) and 0.0 in per_class_ap.values()  # null: no such instance
    assert all(0.0 <= report[k] <= 1.0 for k in ("PQ", "SQ", "RQ"))
    assert (report["grouping"], report["backend"], report["min_region_size"]) == ("votes", "torch", 1)

    printed = capsys.readouterr().out
    assert "miou" in printed and "per-class IoU" in printed and "road" in printed and "per-class AP" in printed
    assert "AP50" in printed and "PQ" in printed


def test_size_override_and_missing_default_model(synth_root, constant_model, tmp_path, capsys, monkeypatch):
    out = tmp_path / "m.json"
    assert main(["evaluate", "--data", str(synth_root), "--model", str(constant_model), "--height", "16",
                 "--width", "32", "--json", str(out), "--workers", "0", "--device", "cpu"]) == 0
    report = json.loads(out.read_text())
    assert (report["height"], report["width"]) == (16, 32) and not math.isnan(report["disparity_err_px"])

    monkeypatch.setattr(factory, "default_model_path", lambda: tmp_path / "models" / "default.pt")
    capsys.readouterr()
    assert main(["evaluate", "--data", str(synth_root)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "default.pt" in err[0] and "--model" in err[0]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--split", "nosuchsplit"], "nosuchsplit"),
        (["--height", "0"], "--height"),
        (["--model", "{missing}"], "not found"),
        (["--grouping", "meanshift"], "meanshift"),
        (["--backend", "openvino"], "openvino"),
    ],
)
def test_evaluate_mistakes_exit_2_with_one_line(extra, message, synth_root, constant_model, tmp_path, capsys):
    extra = [e.format(missing=tmp_path / "none.pt") for e in extra]
    args = ["evaluate", "--data", str(synth_root), "--model", str(constant_model), "--device", "cpu", *extra]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


class Oracle(nn.Module):
    """Returns the ground truth of the batch whose images it is given (semantic as one-hot logits)."""

    def __init__(self, batches: list[dict]) -> None:
        super().__init__()
        self.batches = batches

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        batch = next(b for b in self.batches if torch.equal(b["image"], image))
        semantic = batch["semantic"].clone()
        semantic[semantic == IGNORE_INDEX] = 0
        logits = F.one_hot(semantic, NUM_CLASSES).permute(0, 3, 1, 2).float() * 10.0
        return {"semantic": logits, "instance": batch["instance"], "depth": batch["disparity"][:, None]}


def test_ground_truth_predictions_score_full_ap_and_pq_and_are_written_as_cityscapes_results(synth_root, tmp_path):
    loader = DataLoader(CityscapesDataset(synth_root, "val", (64, 128)), batch_size=2)
    batches = list(loader)
    # Exact votes land on one pixel per instance: the finest grid with no suppression finds
    # every instance, even those of a few pixels (the defaults drop those below 8 pixels, 29
    # of the 68 here, since at 64 x 128 the scaled minimum region counts every instance).
    grouper = build_grouper("votes", min_pixels=1, peak_threshold=1, nms_kernel=1, bin_size=1)
    with CityscapesResultsWriter(tmp_path / "results") as writer:
        scoring = InstanceScoring(grouper, (64, 128), writer)
        metrics = accumulate(Oracle(batches), loader, torch.device("cpu"), ("semantic", "instance", "depth"),
                             instances=scoring)
    result = {**metrics.compute(), **scoring.result()}
    assert result["miou"] == 1.0 and result["instance_err_px"] == 0.0 and result["disparity_err_px"] == 0.0
    assert result["AP"] > 0.95 and result["AP50"] > 0.95, result
    assert result["PQ"] > 0.95 and result["SQ"] > 0.95 and result["RQ"] > 0.95, result

    masks, gt_instances = 0, 0
    for batch in batches:
        gt_instances += sum(len(np.unique(ids[ids >= 1000])) for ids in batch["instance_ids"].numpy())
        for stem, gt in zip(batch["stem"], batch["semantic"].numpy()):
            png = tmp_path / "results" / "semantic" / f"{stem}_pred_labelIds.png"
            semantic = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
            valid = gt != IGNORE_INDEX
            np.testing.assert_array_equal(semantic[valid], TRAIN_ID_TO_LABEL_ID[gt[valid]])
            for line in (tmp_path / "results" / "instance" / f"{stem}_pred.txt").read_text().splitlines():
                name, label, score = line.split()
                mask = cv2.imread(str(tmp_path / "results" / "instance" / name), cv2.IMREAD_UNCHANGED)
                assert mask.shape == gt.shape and set(np.unique(mask)) == {0, 255}
                assert int(label) in EVAL_LABEL_IDS and 0.0 <= float(score) <= 1.0
                assert (gt[mask == 255] == LABEL_ID_TO_TRAIN_ID[int(label)]).all()  # the instance's class
                masks += 1
    assert 0.95 * gt_instances <= masks <= gt_instances  # one mask per instance found
    assert (tmp_path / "results" / "panoptic" / "cityscapes_panoptic_val.json").is_file()


def test_min_region_size_scales_with_resolution():
    assert scaled_min_region_size(1024, 2048) == 100
    assert scaled_min_region_size(512, 1024) == 25
    assert scaled_min_region_size(64, 128) == 1  # 0.39 rounds to 0: at least one pixel


def test_evaluate_and_bag_eval_count_the_same_smallest_instances():
    """One definition of the minimum region: a bag scored at 200x400 uses what evaluate uses
    (3.81 px rounds to 4; bag eval once kept the unrounded 3.81)."""
    from mtl_perception.bag.scoring import BagScorer

    gt_instance = np.zeros((200, 400), np.int32)
    gt_instance[10:20, 10:20] = 26 * 1000  # one car
    semantic = np.zeros((200, 400), np.uint8)
    scorer = BagScorer(num_examples=0)
    scorer.add(0, 0, np.zeros((200, 400, 3), np.uint8), {"instance": gt_instance, "semantic": semantic},
               semantic=semantic, instances=(np.zeros((200, 400), np.int64), np.zeros(0, np.int64), np.zeros(0)))
    assert scorer.instances.ap.min_region_size == scaled_min_region_size(200, 400) == InstanceScoring(None, (200, 400)).min_region_size == 4


def _evaluate(synth_root, tmp_path, name: str, *extra: str) -> dict:
    out = tmp_path / f"{name}.json"
    assert main(["evaluate", "--data", str(synth_root), "--json", str(out), "--workers", "0", "--device", "cpu",
                 *extra]) == 0
    return json.loads(out.read_text())


def test_onnxruntime_backend_gives_the_torch_metrics(synth_root, tmp_path, tmp_path_factory):
    checkpoint = shared_checkpoint(tmp_path_factory)
    results = tmp_path / "results"
    torch_report = _evaluate(synth_root, tmp_path, "torch", "--model", str(checkpoint),
                             "--cityscapes-results", str(results))
    ort_report = _evaluate(synth_root, tmp_path, "ort", "--model", str(shared_onnx(tmp_path_factory, dynamic=True)),
                           "--backend", "onnxruntime")
    assert (torch_report["backend"], ort_report["backend"]) == ("torch", "onnxruntime")
    numbers = [k for k, v in torch_report.items() if isinstance(v, float) and k != "seconds"]
    assert {"miou", "AP", "AP50", "PQ", "SQ", "RQ", "disparity_err_px"} <= set(numbers)
    for key in numbers:
        assert ort_report[key] == pytest.approx(torch_report[key], abs=1e-3), key
    assert torch_report["disparity_err_px"] > 0.1  # a real comparison, not two zeros

    # The results of the torch run: one file of each kind per image, every listed mask present.
    stems = sorted(p.name[: -len("_leftImg8bit.png")] for p in (synth_root / "leftImg8bit" / "val").rglob("*.png"))
    assert sorted(p.name for p in (results / "semantic").iterdir()) == [f"{s}_pred_labelIds.png" for s in stems]
    lines = [l.split() for s in stems for l in (results / "instance" / f"{s}_pred.txt").read_text().splitlines()]
    assert lines and all((results / "instance" / name).is_file() for name, _, _ in lines)


def test_optics_grouping_runs_from_the_command_line(synth_root, tmp_path, tmp_path_factory):
    report = _evaluate(synth_root, tmp_path, "optics", "--model", str(shared_checkpoint(tmp_path_factory)),
                       "--grouping", "optics", "--height", "32", "--width", "64")
    assert report["grouping"] == "optics"
    assert all(0.0 <= report[k] <= 1.0 for k in ("AP", "AP50", "PQ", "SQ", "RQ"))


def test_cityscapes_results_need_instance_heads(synth_root, constant_model, tmp_path, capsys):
    semantic_only = tmp_path / "semantic.pt"
    saved = torch.load(constant_model, weights_only=True)
    saved["config"]["model"]["tasks"] = ["semantic"]
    heads = ("decoders.instance", "decoders.depth")
    saved["model"] = {k: v for k, v in saved["model"].items() if not k.startswith(heads)}
    torch.save(saved, semantic_only)
    assert main(["evaluate", "--data", str(synth_root), "--model", str(semantic_only), "--device", "cpu",
                 "--workers", "0", "--cityscapes-results", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--cityscapes-results" in err[0] and "instance" in err[0]
