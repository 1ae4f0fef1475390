"""``bench node`` at its smallest: the node in its own process, real DDS, the JSON it promises."""
from __future__ import annotations

import json

from mtl_perception.cli import main
from ros_domains import domain_id


def test_bench_node_reports_middleware_and_callback_latency(model_path, tmp_path, monkeypatch):
    monkeypatch.setenv("ROS_DOMAIN_ID", str(domain_id("node_bench")))
    out = tmp_path / "node.json"
    args = ["--model", str(model_path), "--sizes", "64x128", "--output-resolutions", "network", "--frames", "2", "--warmup", "1",
            "--stream-seconds", "2", "--json", str(out)]
    assert main(["bench", "node", *args]) == 0
    (size,) = json.loads(out.read_text())["sizes"]
    assert size["size"] == "64x128"
    received, delivered = size["end_to_end_ms"], size["end_to_end_python_callback_ms"]
    # A message reaches the Python callback after the middleware received it, never before.
    assert 0 < received["min"] <= delivered["min"] and received["p50"] <= delivered["p50"]
    assert size["ratio_p50"] == received["p50"] / size["pipeline_ms"]["p50"]
    assert size["node_pipeline_p50_ms"] > 0 and size["node_image_transport_p50_ms"] >= 0  # the node's diagnostics arrived
    assert size["ratio_node_to_floor"] == received["p50"] / size["relay_floor_ms"]["p50"]
    assert size["forward_ms"]["p50"] > 0 and size["relay_floor_ms"]["min"] > 0
    # The stream at twice the one-at-a-time rate: frames came out, at a rate the JSON derives.
    stream = size["stream"]
    assert 2 < stream["completed"] <= stream["sent"] and stream["node_fps"] > 0
    assert size["ratio_node_period_to_forward"] == 1e3 / stream["node_fps"] / size["forward_ms"]["p50"]


def test_bench_cameras_runs_one_node_for_two_cameras_against_two_nodes(model_path, tmp_path, monkeypatch):
    monkeypatch.setenv("ROS_DOMAIN_ID", str(domain_id("node_bench")))
    out = tmp_path / "cameras.json"
    args = ["--model", str(model_path), "--cameras", "2", "--size", "32x64", "--seconds", "2", "--json", str(out)]
    assert main(["bench", "cameras", *args]) == 0
    result = json.loads(out.read_text())
    one, many = result["one_node"], result["one_node_per_camera"]
    assert set(one["fps_per_camera"]) == {"/bench_rig/cam0", "/bench_rig/cam1"}
    assert set(many["fps_per_camera"]) == {"/bench_cam0", "/bench_cam1"}
    assert one["aggregate_fps"] > 0 and many["aggregate_fps"] > 0 and one["rss_mb"] > 0 < many["rss_mb"]
    assert result["fps_ratio_one_node_to_per_camera"] == one["aggregate_fps"] / many["aggregate_fps"]
    wakeup = result["executor_wakeup"]
    assert 0 < wakeup["one_camera_node"]["cpu_ms"] and 0 < wakeup["one_node"]["cpu_ms"]
    # the two cameras' wait set has more entities than one camera's, not the publishers' handlers
    assert wakeup["one_camera_node"]["waitables"] < wakeup["one_node"]["waitables"] <= 24
    assert wakeup["one_node"]["core_share_at_rate"] == wakeup["one_node"]["cpu_ms"] * 2 * 30.0 * 2 / 1e3


def test_bench_node_refuses_a_bad_qos_size_before_measuring_anything(tmp_path, capsys):
    out = tmp_path / "node.json"
    assert main(["bench", "node", "--qos", "--qos-sizes", "512x1024,12x", "--json", str(out)]) == 2
    assert "--qos-sizes: expected HxW" in capsys.readouterr().err and not out.exists()
