"""`mtl-perception demo`, the README's main job: synthetic drive -> bag -> live node -> outputs."""
from __future__ import annotations

import json

import cv2

from mtl_perception.cli import main
from ros_domains import domain_id


def test_demo_runs_end_to_end_and_writes_mosaics(tmp_path, model_path, capsys, monkeypatch):
    monkeypatch.setenv("ROS_DOMAIN_ID", str(domain_id("demo")))
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    out = tmp_path / "demo"
    code = main(["demo", "--out", str(out), "--model", str(model_path), "--frames", "6", "--rate", "4",
                 "--height", "64", "--width", "128"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "throughput" in printed and "miou" in printed

    report = json.loads((out / "report" / "report.json").read_text())
    assert report["frames"]["read"] == 6
    assert report["frames"]["evaluated"] >= 1
    assert 0.0 <= report["metrics"]["miou"] <= 1.0
    assert (out / "outputs" / "metadata.yaml").is_file()

    mosaic = cv2.imread(str(out / "mosaics" / "mosaic.png"))
    assert mosaic is not None
    assert mosaic.shape[1] == 4 * 128 + 3 * 2  # input | semantic | instances | depth
    rows = (mosaic.shape[0] + 2) // (64 + 2)
    assert 1 <= rows <= 4 and (out / "mosaics" / f"frame_{rows - 1}.png").is_file()


def test_demo_refuses_a_foreign_output_folder(tmp_path, model_path, capsys):
    (tmp_path / "precious.txt").write_text("keep me")
    assert main(["demo", "--out", str(tmp_path), "--model", str(model_path)]) == 2
    assert "not made by the demo" in capsys.readouterr().err
    assert (tmp_path / "precious.txt").read_text() == "keep me"
