"""Backends: torch and onnxruntime give the same metrics, the factory's choices and refusals."""
from __future__ import annotations

import importlib.util
import math

import pytest
import torch
from torch.utils.data import DataLoader

from inference_helpers import HEIGHT, WIDTH, camera_like_batch, shared_checkpoint, shared_onnx, tiny_checkpoint
from mtl_perception.data.cityscapes import CityscapesDataset
from mtl_perception.errors import UserError
from mtl_perception.evaluation.metrics import MetricAccumulator
from mtl_perception.inference import factory
from mtl_perception.inference.factory import choose_backend, create_backend
from mtl_perception.inference.pipeline import Pipeline

HEADLINE = ("miou", "instance_err_px", "disparity_err_px", "disparity_rmse_px")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return shared_checkpoint(tmp_path_factory)


@pytest.fixture(scope="module")
def val_loader(synth_root):
    return DataLoader(CityscapesDataset(synth_root, "val", (HEIGHT, WIDTH)), batch_size=2)


def _metrics(pipeline: Pipeline, loader) -> dict[str, float]:
    """The evaluator's use of a pipeline: raw outputs at network resolution into the accumulator."""
    acc = MetricAccumulator(pipeline.metadata.tasks)
    for batch in loader:
        out = pipeline.run_batch(batch["image"], normalized=True)
        acc.update_semantic(out["semantic_ids"], batch["semantic"])
        acc.update({k: out[k] for k in ("instance", "depth")}, batch)
    return acc.compute()


def test_torch_and_onnxruntime_metrics_agree(checkpoint, tmp_path_factory, val_loader):
    torch_metrics = _metrics(Pipeline(create_backend("torch", checkpoint, "cpu")), val_loader)
    ort_backend = create_backend("onnxruntime", shared_onnx(tmp_path_factory, dynamic=True), "cpu")
    ort_metrics = _metrics(Pipeline(ort_backend), val_loader)
    for key in HEADLINE:
        assert math.isfinite(torch_metrics[key]), key
        assert abs(torch_metrics[key] - ort_metrics[key]) <= 1e-3, key
    assert torch_metrics["disparity_err_px"] > 0.1  # a real comparison, not two zeros


def test_torch_and_onnxruntime_agree_on_a_skip_decoder_model(tmp_path, val_loader):
    """The stride-4 detail decoder through both CPU backends (the TensorRT backend builds from
    the same ONNX graph): the same metrics."""
    checkpoint = tiny_checkpoint(tmp_path / "skip.pt", decoder="skip")
    torch_metrics = _metrics(Pipeline(create_backend("torch", checkpoint, "cpu")), val_loader)
    ort_metrics = _metrics(Pipeline(create_backend("onnxruntime", checkpoint, "cpu", cache_dir=tmp_path / "cache")), val_loader)
    for key in HEADLINE:
        assert math.isfinite(torch_metrics[key]), key
        assert abs(torch_metrics[key] - ort_metrics[key]) <= 1e-3, key
    assert torch_metrics["disparity_err_px"] > 0.1


def test_onnxruntime_exports_a_checkpoint_once_into_the_cache(checkpoint, tmp_path_factory):
    exported = shared_onnx(tmp_path_factory, dynamic=True)  # the export the factory needs, made once
    mtime = exported.stat().st_mtime_ns
    backend = create_backend("onnxruntime", checkpoint, "cpu", cache_dir=exported.parent.parent)
    assert backend.path == str(exported) and exported.stat().st_mtime_ns == mtime
    assert backend.metadata.dynamic and not backend.metadata.argmax


def test_auto_choice(monkeypatch, tmp_path):
    ckpt, onnx_file, engine = tmp_path / "m.pt", tmp_path / "m.onnx", tmp_path / "m.engine"
    cpu, gpu = torch.device("cpu"), torch.device("cuda", 0)
    installed = {"onnxruntime", "onnxscript"}
    monkeypatch.setattr(factory, "_installed", lambda module: module in installed)
    assert choose_backend(ckpt, cpu) == "onnxruntime"  # measured faster on CPU (bench inference)
    assert choose_backend(onnx_file, gpu) == "onnxruntime" and choose_backend(ckpt, gpu) == "torch"
    assert choose_backend(engine, cpu) == "tensorrt"
    installed.discard("onnxscript")  # cannot export on the fly: stay with the checkpoint in torch
    assert choose_backend(ckpt, cpu) == "torch" and choose_backend(onnx_file, cpu) == "onnxruntime"
    installed.clear()
    assert choose_backend(ckpt, cpu) == "torch"
    installed.add("tensorrt")
    assert choose_backend(ckpt, gpu) == "tensorrt"


def test_auto_on_this_cpu_opens_onnxruntime(checkpoint, tmp_path_factory):
    cache_dir = shared_onnx(tmp_path_factory, dynamic=True).parent.parent
    backend = create_backend("auto", checkpoint, "cpu", cache_dir=cache_dir)
    assert backend.name == "onnxruntime" and backend.device.type == "cpu"


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_tensorrt_without_tensorrt_is_one_line_saying_what_to_install(checkpoint):
    with pytest.raises(UserError) as exc:
        create_backend("tensorrt", checkpoint)
    message = str(exc.value)
    assert "pip install tensorrt" in message and "python3-libnvinfer" in message and "\n" not in message


def test_torch_backend_options(checkpoint):
    x = camera_like_batch(1, HEIGHT // 2, WIDTH // 2)  # bf16 convolutions are slow on CPUs without AMX
    reference = create_backend("torch", checkpoint, "cpu", channels_last=False).forward(x)
    for options in ({"channels_last": True}, {"precision": "bf16"}):
        out = create_backend("torch", checkpoint, "cpu", **options).forward(x)
        tol = 1e-4 if "channels_last" in options else 0.5
        for key, value in reference.items():
            assert out[key].dtype == torch.float32
            torch.testing.assert_close(out[key], value, atol=tol, rtol=0.05)
    for gpu_only in ("compile", "cuda_graphs"):
        with pytest.raises(UserError, match="GPU-only"):
            create_backend("torch", checkpoint, "cpu", **{gpu_only: True})


def test_factory_refusals(checkpoint, tmp_path, tmp_path_factory):
    with pytest.raises(UserError, match="unknown backend"):
        create_backend("openvino", checkpoint)
    with pytest.raises(UserError, match="model file not found"):
        create_backend("torch", tmp_path / "missing.pt")
    with pytest.raises(UserError, match="unknown option"):
        create_backend("onnxruntime", checkpoint, "cpu", channels_last=True)
    onnx_file = shared_onnx(tmp_path_factory, dynamic=True)
    with pytest.raises(UserError, match="needs a training checkpoint"):
        create_backend("torch", onnx_file)
    with pytest.raises(UserError, match="export it with --precision fp16"):
        create_backend("onnxruntime", onnx_file, "cpu", precision="fp16")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="sees no CUDA GPU"):
            create_backend("torch", checkpoint, "cuda")
