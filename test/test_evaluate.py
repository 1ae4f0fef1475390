"""``mtl-perception evaluate``: JSON keys, table, defaults, and values checked against the data.

The model is a real ``MultiTaskNet`` whose output convolutions are zeroed with constant biases,
so it predicts "road", a zero instance vector and a constant disparity everywhere; the
expected metrics then follow from the dataset's targets alone.
"""
from __future__ import annotations

import json
import math

import pytest
import torch

from mtl_perception.cli import main
from mtl_perception.data.cityscapes import CityscapesDataset
from mtl_perception.data.labels import CLASS_NAMES, IGNORE_INDEX, train_id
from mtl_perception.evaluation import evaluate_command
from mtl_perception.model import build_model

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
    return {
        "miou": iou_road / len(classes_in_gt),  # every other class present in gt has IoU 0
        "iou_road": iou_road,
        "classes_in_gt": len(classes_in_gt),
        "instance_err_px": vec.permute(1, 0, 2, 3)[:, mask_i].abs().double().mean().item(),
        "disparity_err_px": err.abs().mean().item(),
        "disparity_rmse_px": err.square().mean().sqrt().item(),
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
    for key in ("miou", "iou_road", "instance_err_px", "disparity_err_px", "disparity_rmse_px"):
        assert report[key] == pytest.approx(expected[key], rel=1e-5), key
    present = [v for k, v in report.items() if k.startswith("iou_")]
    assert sum(v is not None for v in present) == expected["classes_in_gt"]  # absent classes: null
    assert expected["instance_err_px"] > 0 and expected["disparity_err_px"] > 0  # non-trivial checks

    printed = capsys.readouterr().out
    assert "miou" in printed and "per-class IoU" in printed and "road" in printed


def test_size_override_and_missing_default_model(synth_root, constant_model, tmp_path, capsys, monkeypatch):
    out = tmp_path / "m.json"
    assert main(["evaluate", "--data", str(synth_root), "--model", str(constant_model), "--height", "16",
                 "--width", "32", "--json", str(out), "--workers", "0", "--device", "cpu"]) == 0
    report = json.loads(out.read_text())
    assert (report["height"], report["width"]) == (16, 32) and not math.isnan(report["disparity_err_px"])

    monkeypatch.setattr(evaluate_command, "default_model_path", lambda: tmp_path / "models" / "default.pt")
    capsys.readouterr()
    assert main(["evaluate", "--data", str(synth_root)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "default.pt" in err[0] and "--model" in err[0]


@pytest.mark.parametrize(
    "extra, message",
    [(["--split", "nosuchsplit"], "nosuchsplit"), (["--height", "0"], "--height"), (["--model", "{missing}"], "not found")],
)
def test_evaluate_mistakes_exit_2_with_one_line(extra, message, synth_root, constant_model, tmp_path, capsys):
    extra = [e.format(missing=tmp_path / "none.pt") for e in extra]
    args = ["evaluate", "--data", str(synth_root), "--model", str(constant_model), "--device", "cpu", *extra]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
