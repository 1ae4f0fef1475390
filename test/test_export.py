"""ONNX export: onnxruntime matches torch, metadata travels in the file, folded input/argmax, CLI."""
from __future__ import annotations

import argparse
import importlib.util

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from inference_helpers import (
    BASELINE,
    FX,
    HEIGHT,
    WIDTH,
    camera_like_batch,
    shared_checkpoint,
    shared_onnx,
    tiny_checkpoint,
    tiny_config,
)
from mtl_perception.config import config_hash
from mtl_perception.errors import UserError
from mtl_perception.inference.metadata import ModelMetadata, read_onnx_metadata
from mtl_perception.inference.onnxruntime_backend import OnnxRuntimeBackend
from mtl_perception.model.checkpoint import load_model
from mtl_perception_training.export import export
from mtl_perception_training.export_command import COMMAND

TOL = 1e-4


def run_export(*argv: str) -> int:
    """The ``export`` sub-command as ``mtl-perception export ARGV`` runs it (UserError propagates)."""
    parser = argparse.ArgumentParser()
    COMMAND.add_arguments(parser)
    return COMMAND.run(parser.parse_args(argv))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return shared_checkpoint(tmp_path_factory)


@pytest.fixture(scope="module")
def dynamic_onnx(checkpoint, tmp_path_factory):
    return shared_onnx(tmp_path_factory, dynamic=True)


def _session(path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _not_a_tie(logits: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """(B, H, W) pixels whose best logit leads the second by more than ``eps``."""
    top2 = logits.topk(2, dim=1).values
    return (top2[:, 0] - top2[:, 1]) > eps


@pytest.mark.parametrize("size", [(HEIGHT, WIDTH), (48, 96)])
def test_onnxruntime_matches_torch_at_two_sizes(checkpoint, dynamic_onnx, size):
    model, _ = load_model(checkpoint)
    x = camera_like_batch(2, *size, seed=size[0])
    with torch.no_grad():
        expected = model(x)
    got = dict(zip(["semantic", "instance", "depth"], _session(dynamic_onnx).run(None, {"image": x.numpy()})))
    for task in ("semantic", "instance", "depth"):
        ref = expected[task]
        assert got[task].shape == tuple(ref.shape)
        assert ref.std() > 1.0, "outputs too small for the tolerance to mean anything"
        assert np.abs(got[task] - ref.numpy()).max() <= TOL, task
    same = torch.from_numpy(got["semantic"]).argmax(1) == expected["semantic"].argmax(1)
    assert bool(same[_not_a_tie(expected["semantic"])].all())


@pytest.mark.parametrize("decoder", ["skip", "skip_shared"])
def test_skip_decoders_export_and_match_torch(tmp_path, decoder):
    """The detail decoders (low-level skips, two bilinear upsamplings inside the graph) export
    and run in onnxruntime as in torch, at the export size and another (dynamic) size."""
    from mtl_perception.inference.onnx_export import cached_onnx

    checkpoint = tiny_checkpoint(tmp_path / f"{decoder}.pt", decoder=decoder)
    onnx_path = cached_onnx(checkpoint, tmp_path / "cache", dynamic=True)
    model, _ = load_model(checkpoint)
    session = _session(onnx_path)
    for size in ((HEIGHT, WIDTH), (48, 96)):
        x = camera_like_batch(1, *size, seed=size[0])
        with torch.no_grad():
            expected = model(x)
        got = dict(zip(["semantic", "instance", "depth"], session.run(None, {"image": x.numpy()})))
        for task, ref in expected.items():
            assert ref.std() > 1.0, "outputs too small for the tolerance to mean anything"
            assert np.abs(got[task] - ref.numpy()).max() <= TOL, (task, size)


def test_metadata_travels_in_the_onnx_file(dynamic_onnx):
    meta = read_onnx_metadata(str(dynamic_onnx))
    config = tiny_config()
    assert meta == ModelMetadata.from_config(config, dynamic=True)
    assert meta.tasks == ("semantic", "instance", "depth") and meta.num_classes == 19
    assert (meta.height, meta.width, meta.dynamic, meta.output_stride) == (HEIGHT, WIDTH, True, 16)
    assert meta.config_hash == config_hash(config)
    camera = (meta.camera_fx, meta.camera_width, meta.camera_baseline, meta.camera_source)
    assert camera == (FX, WIDTH, BASELINE, "config")
    assert meta.mean == pytest.approx((0.485, 0.456, 0.406)) and meta.std == pytest.approx((0.229, 0.224, 0.225))
    graph = onnx.load(str(dynamic_onnx), load_external_data=False)
    assert graph.opset_import[0].version >= 17
    dims = [d.dim_param for d in graph.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", "", "height", "width"]


def test_training_camera_comes_from_arguments_config_or_cityscapes():
    meta = ModelMetadata.from_config(tiny_config(), height=2 * HEIGHT, width=2 * WIDTH, dynamic=False)
    assert (meta.camera_fx, meta.camera_width, meta.camera_source) == (FX, WIDTH, "config")
    given = ModelMetadata.from_config(tiny_config(), width=WIDTH, camera_fx=99.0, camera_baseline=0.3)
    camera = (given.camera_fx, given.camera_width, given.camera_baseline, given.camera_source)
    assert camera == (99.0, WIDTH, 0.3, "export")
    default = ModelMetadata.from_config({**tiny_config(), "data": {"height": HEIGHT, "width": WIDTH}})
    assert (default.camera_fx, default.camera_width, default.camera_source) == (2262.52, 2048, "cityscapes")


def test_cli_raw_input_and_argmax_are_folded_into_a_fixed_graph(checkpoint, tmp_path, capsys):
    path = tmp_path / "raw.onnx"
    assert run_export("--checkpoint", str(checkpoint), "--onnx", str(path), "--raw-input", "--argmax") == 0
    (line,) = [l for l in capsys.readouterr().out.splitlines() if l.startswith("onnxruntime vs torch: ")]
    reported = dict(item.split() for item in line.split(": ", 1)[1].split(", "))
    assert set(reported) == {"semantic_ids", "instance", "depth"}
    assert float(reported["instance"]) <= TOL and float(reported["depth"]) <= TOL
    session = _session(path)
    (inp,) = session.get_inputs()
    assert inp.type == "tensor(uint8)" and inp.shape == [1, HEIGHT, WIDTH, 3]
    assert [o.name for o in session.get_outputs()] == ["semantic_ids", "instance", "depth"]
    assert session.get_outputs()[0].type == "tensor(uint8)"

    image = np.random.default_rng(1).integers(0, 256, (1, HEIGHT, WIDTH, 3), dtype=np.uint8)
    ids, vectors, disparity = session.run(None, {"image": image})
    model, _ = load_model(checkpoint)
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    x = ((torch.from_numpy(image).float() / 255 - mean) / std).permute(0, 3, 1, 2)
    with torch.no_grad():
        expected = model(x)
    assert np.abs(vectors - expected["instance"].numpy()).max() <= TOL
    assert np.abs(disparity - expected["depth"].numpy()).max() <= TOL
    decided = _not_a_tie(expected["semantic"])
    assert bool((torch.from_numpy(ids).long() == expected["semantic"].argmax(1))[decided].all())
    meta = read_onnx_metadata(str(path))
    assert meta.raw_input and meta.argmax and not meta.dynamic


def test_half_precision_export_runs_close_to_fp32(checkpoint, tmp_path):
    path = tmp_path / "half.onnx"
    report = export(checkpoint, path, precision="fp16", log=lambda _: None)
    graph = onnx.load(str(path))
    conv_weights = [i for i in graph.graph.initializer if len(i.dims) == 4]
    assert conv_weights and all(i.data_type == onnx.TensorProto.FLOAT16 for i in conv_weights)
    assert report.metadata.precision == "fp16"
    # Input and outputs stay float32, so the runtime needs no precision-specific handling.
    session = _session(path)
    assert session.get_inputs()[0].type == "tensor(float)"
    assert {o.type for o in session.get_outputs()} == {"tensor(float)"}
    assert report.max_abs_diff["instance"] < 0.5 and report.max_abs_diff["depth"] < 0.5


def test_onnx_without_metadata_is_refused_with_a_clear_message(dynamic_onnx, tmp_path):
    graph = onnx.load(str(dynamic_onnx))
    del graph.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(graph, str(bare))
    with pytest.raises(UserError, match="mtl-perception export"):
        OnnxRuntimeBackend(bare, torch.device("cpu"))


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--height", "64"], "both --height and --width"),
        (["--dynamic", "--height", "64", "--width", "128"], "choose one"),
        (["--engine", "x.engine"], "pip install tensorrt"),
    ],
)
def test_cli_user_mistakes_are_one_line_user_errors(checkpoint, tmp_path, extra, message):
    if "--engine" in extra and importlib.util.find_spec("tensorrt"):
        pytest.skip("TensorRT is installed here")
    with pytest.raises(UserError, match=message) as exc:
        run_export("--checkpoint", str(checkpoint), "--onnx", str(tmp_path / "m.onnx"), *extra)
    assert "\n" not in str(exc.value)
    assert not (tmp_path / "m.onnx").exists()


def test_cli_missing_checkpoint_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="checkpoint not found"):
        run_export("--checkpoint", str(tmp_path / "none.pt"), "--onnx", str(tmp_path / "m.onnx"))
