"""``bench inference`` measures what a vehicle runs: a camera larger than the network, both output resolutions."""
from __future__ import annotations

import json

import pytest

from inference_helpers import HEIGHT, WIDTH, tiny_checkpoint
from mtl_perception.cli import main


def test_bench_inference_times_cameras_larger_than_the_network(tmp_path):
    out = tmp_path / "inference.json"
    model = tiny_checkpoint(tmp_path / "tiny.pt")
    camera = f"{2 * HEIGHT}x{2 * WIDTH}"
    assert main([
        "bench", "inference", "--model", str(model), "--backends", "torch", "--sizes", f"{HEIGHT}x{WIDTH}",
        "--camera-sizes", camera, "--output-resolutions", "network,input", "--outputs", "all",
        "--repeats", "2", "--warmup", "0", "--json", str(out),
    ]) == 0
    rows = json.loads(out.read_text())["results"]
    assert [(r["camera"], r["size"], r["output_resolution"], r["outputs"]) for r in rows] == [
        (camera, f"{HEIGHT}x{WIDTH}", "network", "all"), (camera, f"{HEIGHT}x{WIDTH}", "input", "all"),
    ]
    for row in rows:
        assert row["forward_ms"] > 0 and row["pipeline_ms"] > 0 and row["ratio"] > 0
        assert {"preprocess", "forward", "postprocess", "copy", "total"} <= row["stages_ms"].keys()


@pytest.mark.parametrize("option, value", [("--output-resolutions", "camera"), ("--outputs", "semantic,colour")])
def test_bench_inference_refuses_an_unknown_choice_in_one_line(tmp_path, capsys, option, value):
    assert main(["bench", "inference", option, value, "--json", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err
    assert option in err and "Traceback" not in err


def test_auto_backends_leave_out_onnxruntime_on_a_gpu_without_its_cuda_provider():
    """The plain onnxruntime wheel (this one, and the one a GPU image often has) is CPU-only:
    on a GPU, ``--backends auto`` must not pick a backend that then refuses to start."""
    import onnxruntime
    import torch

    from mtl_perception.benchmarks.inference import _usable_backends

    assert _usable_backends(torch.device("cpu"))[:2] == ["torch", "onnxruntime"]
    on_gpu = _usable_backends(torch.device("cuda"))
    assert ("onnxruntime" in on_gpu) == ("CUDAExecutionProvider" in onnxruntime.get_available_providers())
