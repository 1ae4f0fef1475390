"""Tiny checkpoints for the inference tests (export, backends, pipeline).

A freshly initialised network outputs values near 0 (small head weights, BatchNorm at its
identity statistics), which would make "ONNX matches torch within 1e-4" pass for any graph.
``tiny_checkpoint`` therefore gives BatchNorm random statistics and scales each head so its
outputs have realistic sizes for 64 x 128 images: logits of a few units, vectors of ~5 px,
disparity ~4 +- 2 px.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from mtl_perception.model import build_model
from mtl_perception.model.tasks import TASKS

HEIGHT, WIDTH = 64, 128
#: Training camera written into the tiny configs (fx at WIDTH, baseline in metres).
FX, BASELINE = 140.0, 0.2
_TARGET_STD = {"semantic": 3.0, "instance": 5.0, "depth": 2.0}
_TARGET_MEAN = {"semantic": 0.0, "instance": 0.0, "depth": 4.0}


def tiny_config(tasks: Sequence[str] = TASKS, decoder: str = "paper") -> dict:
    return {
        "data": {"height": HEIGHT, "width": WIDTH, "camera": {"fx": FX, "baseline": BASELINE}},
        "model": {
            "backbone": "resnet18",
            "output_stride": 16,
            "tasks": list(tasks),
            "aspp_channels": 16,
            "decoder_channels": 16,
            "decoder": decoder,
        },
    }


def camera_like_batch(batch: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """Normalised (B, 3, H, W) images of uniformly random pixels: what the network sees."""
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    pixels = torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(seed))
    return (pixels - mean) / std


@torch.no_grad()
def tiny_checkpoint(path: Path, tasks: Sequence[str] = TASKS, seed: int = 0, decoder: str = "paper") -> Path:
    """Write a checkpoint of a small network with realistically sized outputs; return ``path``."""
    torch.manual_seed(seed)
    config = tiny_config(tasks, decoder)
    model = build_model(config["model"]).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.uniform_(0.5, 1.5)
            m.bias.uniform_(-0.1, 0.1)
    out = model(camera_like_batch(2, HEIGHT, WIDTH))
    for task, decoder in model.decoders.items():
        head = decoder.head
        channel_mean = out[task].mean((0, 2, 3))
        scale = _TARGET_STD[task] / (out[task] - channel_mean.view(1, -1, 1, 1)).std().clamp_min(1e-6)
        head.weight.mul_(scale)
        # Centre each head on its target mean (disparity ~4 px: positive, as depth needs).
        head.bias.copy_((head.bias - channel_mean) * scale + _TARGET_MEAN[task])
    torch.save({"config": config, "model": model.state_dict()}, path)
    return path


def shared_checkpoint(tmp_path_factory) -> Path:
    """One tiny checkpoint per test session, shared by the inference test modules."""
    path = tmp_path_factory.getbasetemp() / "inference_shared" / "tiny.pt"
    if not path.is_file():
        path.parent.mkdir(exist_ok=True)
        tiny_checkpoint(path)
    return path


def shared_onnx(tmp_path_factory, **options) -> Path:
    """The shared checkpoint exported with ``options``, once per session (exports take seconds)."""
    from mtl_perception.inference.onnx_export import cached_onnx

    checkpoint = shared_checkpoint(tmp_path_factory)
    return cached_onnx(checkpoint, checkpoint.parent / "cache", **options)
