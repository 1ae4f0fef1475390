"""Checkpoint -> ONNX (-> TensorRT engine), the offline end of the deployment path.

The ONNX graph and its metadata come from ``mtl_perception.inference.onnx_export`` (the
runtime needs the same exporter to derive ONNX on the fly); this module adds what a person
exporting wants: a parity check of the ONNX against torch, and the TensorRT engine with the
equivalent ``trtexec`` line.

ONNX precision: half when ``precision="fp16"``, except when an engine is built right away on
TensorRT 10, whose FP16 builder flag gives a mixed-precision engine from the fp32 graph
(TensorRT 11 has no such flag and needs the half graph; see ``trt_builder``).
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from mtl_perception.errors import UserError
from mtl_perception.inference.metadata import ModelMetadata


@dataclass
class ExportReport:
    onnx: Path
    metadata: ModelMetadata
    max_abs_diff: dict[str, float] = field(default_factory=dict)  # onnxruntime vs torch, per output
    engine: Path | None = None
    trtexec: str | None = None


def onnx_parity(
    model: nn.Module, metadata: ModelMetadata, onnx_path: str | os.PathLike, seed: int = 0
) -> dict[str, float]:
    """Max |onnxruntime - torch fp32| per output on one random image (ids: fraction that differ)."""
    import onnxruntime as ort

    from mtl_perception.inference.onnx_export import DeployWrapper

    h, w = metadata.height or 256, metadata.width or 512
    g = torch.Generator().manual_seed(seed)
    image = torch.randint(0, 256, (1, h, w, 3), dtype=torch.uint8, generator=g)
    reference = DeployWrapper(model, replace(metadata, precision="fp32")).eval()
    mean = torch.tensor(metadata.mean).view(1, 3, 1, 1)
    std = torch.tensor(metadata.std).view(1, 3, 1, 1)
    x = image if metadata.raw_input else (image.permute(0, 3, 1, 2).float() / 255.0 - mean) / std
    with torch.no_grad():
        expected = reference(x)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    diffs = {}
    for name, e, o in zip(metadata.output_names, expected, got):
        if name == "semantic_ids":
            diffs[name] = float(np.mean(e.numpy() != o))
        else:
            diffs[name] = float(np.abs(e.float().numpy() - o).max())
    return diffs


def export(
    checkpoint: str | os.PathLike,
    onnx_path: str | os.PathLike,
    *,
    height: int | None = None,
    width: int | None = None,
    dynamic: bool = False,
    raw_input: bool = False,
    argmax: bool = False,
    precision: str = "fp32",
    camera_fx: float | None = None,
    camera_baseline: float | None = None,
    engine: str | os.PathLike | None = None,
    max_batch: int = 1,
    cache_dir: str | os.PathLike | None = None,
    verify: bool = True,
    log: Callable[[str], None] = print,
) -> ExportReport:
    """Export ``checkpoint`` to ``onnx_path`` and optionally build ``engine`` (see module docstring)."""
    from mtl_perception.inference.cache import default_cache_dir
    from mtl_perception.inference.onnx_export import export_onnx
    from mtl_perception.model.checkpoint import load_model

    if (height is None) != (width is None):
        raise UserError("give both --height and --width, or neither")
    if dynamic and height is not None:
        raise UserError("--dynamic exports any size; --height/--width fix one: choose one")
    trt_major = _tensorrt_major() if engine is not None else None
    graph_precision = "fp32" if precision == "fp16" and trt_major is not None and trt_major < 11 else precision

    model, config = load_model(checkpoint, "cpu")
    metadata = ModelMetadata.from_config(
        config, height=height, width=width, dynamic=dynamic, raw_input=raw_input, argmax=argmax,
        precision=graph_precision, camera_fx=camera_fx, camera_baseline=camera_baseline,
    )
    if not dynamic and not (metadata.height and metadata.width):
        raise UserError(f"{checkpoint} records no training size (data.height/width): pass --height and --width")
    log(f"exporting {checkpoint} -> {onnx_path} ({_describe(metadata)})")
    report = ExportReport(Path(export_onnx(model, metadata, onnx_path)), metadata)
    if verify and importlib.util.find_spec("onnxruntime") is None:
        log("onnxruntime is not installed: parity check skipped")
    elif verify:
        report.max_abs_diff = onnx_parity(model, metadata, report.onnx)
        log("onnxruntime vs torch: " + ", ".join(f"{k} {v:.2e}" for k, v in report.max_abs_diff.items()))
    if engine is not None:
        report.engine, report.trtexec = build_engine_file(
            report.onnx, Path(engine), precision, max_batch, Path(cache_dir or default_cache_dir()), log
        )
    return report


def build_engine_file(
    onnx_path: Path, engine_path: Path, precision: str, max_batch: int, cache_dir: Path, log: Callable[[str], None]
) -> tuple[Path, str]:
    """Build ``engine_path`` (plus its sidecar) from ``onnx_path`` on this GPU; return it and the trtexec line.

    The same build as the backend's engine cache (``tensorrt_backend.plan_engine``), written
    to a file of the user's choosing instead of the cache.
    """
    from mtl_perception.inference.backend import resolve_device
    from mtl_perception.inference.engine_cache import write_sidecar
    from mtl_perception.inference.tensorrt_backend import plan_engine
    from mtl_perception.io_utils import atomic_write

    build = plan_engine(onnx_path, resolve_device("cuda"), precision, cache_dir, max_batch=max_batch)
    command = build.command(engine_path)
    log(f"equivalent trtexec command:\n  {command}")
    serialized = build.build(log)
    atomic_write(engine_path, lambda tmp: Path(tmp).write_bytes(serialized))
    write_sidecar(engine_path, build.key, build.metadata)
    log(f"wrote {engine_path} ({build.key.describe()})")
    return engine_path, command


def _tensorrt_major() -> int:
    from mtl_perception.inference.trt_builder import import_tensorrt

    return int(import_tensorrt().__version__.split(".")[0])


def _describe(m: ModelMetadata) -> str:
    size = f"{m.height}x{m.width}" if m.height else "?"
    shape = f"dynamic (trained at {size})" if m.dynamic else size
    flags = [f for f, on in (("raw uint8 NHWC input", m.raw_input), ("argmax", m.argmax)) if on]
    return ", ".join([f"{m.backbone}/os{m.output_stride}", f"tasks {'+'.join(m.tasks)}", shape, m.precision, *flags])
