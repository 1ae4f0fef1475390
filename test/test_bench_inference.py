"""``bench inference`` measures what a vehicle runs: a camera larger than the network, both output resolutions."""
from __future__ import annotations

import json

from inference_helpers import HEIGHT, WIDTH, tiny_checkpoint
from mtl_perception.cli import main


def test_bench_inference_times_cameras_larger_than_the_network(tmp_path):
    out = tmp_path / "inference.json"
    model = tiny_checkpoint(tmp_path / "tiny.pt")
    camera = f"{2 * HEIGHT}x{2 * WIDTH}"
    assert main([
        "bench", "inference", "--model", str(model), "--backends", "torch", "--sizes", f"{HEIGHT}x{WIDTH}",
        "--camera-sizes", camera, "--output-resolutions", "network,input", "--repeats", "2", "--warmup", "0",
        "--json", str(out),
    ]) == 0
    rows = json.loads(out.read_text())["results"]
    assert [(r["camera"], r["size"], r["output_resolution"]) for r in rows] == [
        (camera, f"{HEIGHT}x{WIDTH}", "network"), (camera, f"{HEIGHT}x{WIDTH}", "input"),
    ]
    for row in rows:
        assert row["forward_ms"] > 0 and row["pipeline_ms"] > 0 and row["ratio"] > 0
        assert {"preprocess", "forward", "postprocess", "copy", "total"} <= row["stages_ms"].keys()


def test_bench_inference_refuses_an_unknown_output_resolution(tmp_path, capsys):
    assert main(["bench", "inference", "--output-resolutions", "camera", "--json", str(tmp_path / "x.json")]) == 2
    assert "--output-resolutions" in capsys.readouterr().err
