"""``create_backend``: pick and open a backend for a model file.

Model files: a training checkpoint (``.pt``), an exported ``.onnx``, or a TensorRT ``.engine``.
A backend that needs another form derives it once into the cache (``cache.py``): onnxruntime
exports a checkpoint to ONNX (dynamic axes, logits), TensorRT builds an engine from ONNX (a
checkpoint is first exported with the argmax folded in: uint8 ids instead of 19 float maps
leave the GPU's memory; instance scores are then the vote focus alone).

``auto`` picks, in order:
1. ``tensorrt`` when TensorRT imports and torch sees a CUDA GPU (or the file is an engine);
2. on a CUDA GPU otherwise: ``torch`` for a checkpoint, ``onnxruntime`` for an ``.onnx``;
3. on a CPU: ``onnxruntime`` (checkpoints are exported on the fly into the cache), because it
   ran the default ResNet-18 OS16 at 256x512 about 2x faster than eager torch on this 2-core
   CPU (see ``mtl-perception bench inference``); ``torch`` when onnxruntime or the exporter
   (onnxscript) is missing.
"""
from __future__ import annotations

import importlib.util
import logging
import os
from importlib.resources import files
from pathlib import Path
from typing import Any

import torch

from mtl_perception.errors import UserError
from mtl_perception.inference.backend import Backend, resolve_device
from mtl_perception.inference.cache import default_cache_dir

LOG = logging.getLogger(__name__)
BACKENDS = ("auto", "torch", "onnxruntime", "tensorrt")
CHECKPOINT_SUFFIXES = (".pt", ".pth")
ENGINE_SUFFIXES = (".engine", ".plan")

#: Options each backend accepts (besides model_path, device, precision).
_OPTIONS: dict[str, set[str]] = {
    "torch": {"channels_last", "compile", "cuda_graphs"},
    "onnxruntime": {"threads", "cache_dir"},
    "tensorrt": {"cache_dir", "height", "width", "max_batch"},
}


def default_model_path() -> Path:
    """The model shipped as package data (absent in a development checkout until trained)."""
    return Path(str(files("mtl_perception") / "models" / "default.pt"))


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def choose_backend(model_path: Path, device: torch.device) -> str:
    """The backend ``auto`` means for this file and device (module docstring)."""
    suffix = model_path.suffix
    if suffix in ENGINE_SUFFIXES or (device.type == "cuda" and _installed("tensorrt")):
        return "tensorrt"
    if device.type == "cuda":
        return "onnxruntime" if suffix == ".onnx" else "torch"
    if _installed("onnxruntime") and (suffix == ".onnx" or _installed("onnxscript")):
        return "onnxruntime"
    return "torch"


def create_backend(
    name: str = "auto",
    model_path: str | os.PathLike | None = None,
    device: str | torch.device = "auto",
    precision: str | None = None,
    batch: int = 1,
    **options: Any,
) -> Backend:
    """Open ``model_path`` (default: the shipped model) with backend ``name`` on ``device``.

    ``precision``: fp32 | fp16 (| bf16 for torch); ``None`` takes the model file's own (an
    ONNX or engine's graph precision; fp32 for a checkpoint). ``batch``: the most images the
    caller passes to one forward (a multi-camera node: its camera count); a TensorRT engine
    built here takes up to that many when the model allows a batch (a checkpoint, an ONNX
    exported with ``--dynamic``); torch and onnxruntime take any batch of a dynamic model.

    ``options``: torch: ``channels_last``, ``compile``, ``cuda_graphs``; onnxruntime:
    ``threads``, ``cache_dir``; tensorrt: ``cache_dir``, ``height``, ``width``, ``max_batch``.
    """
    if name not in BACKENDS:
        raise UserError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    path = Path(model_path) if model_path is not None else default_model_path()
    if not path.is_file():
        hint = "" if model_path is not None else " (no model is shipped in this checkout: pass one)"
        raise UserError(f"model file not found: {path}{hint}")
    if name == "tensorrt" and not _installed("tensorrt"):
        from mtl_perception.inference.trt_builder import INSTALL_HINT

        raise UserError(INSTALL_HINT)
    dev = resolve_device(device)
    if name == "auto":
        name = choose_backend(path, dev)
        LOG.info("backend auto -> %s on %s", name, dev)
    unknown = sorted(set(options) - _OPTIONS[name])
    if unknown:
        raise UserError(f"backend {name}: unknown option(s) {unknown}; known: {sorted(_OPTIONS[name])}")
    cache_dir = Path(options.pop("cache_dir", None) or default_cache_dir())

    if name == "torch":
        if path.suffix not in CHECKPOINT_SUFFIXES:
            raise UserError(f"backend torch needs a training checkpoint (.pt), got {path}")
        from mtl_perception.inference.torch_backend import TorchBackend

        return TorchBackend.from_checkpoint(path, dev, precision=precision or "fp32", **options)

    if name == "onnxruntime":
        from mtl_perception.inference.onnxruntime_backend import OnnxRuntimeBackend

        onnx_path = _as_onnx(path, cache_dir, precision or "fp32")
        return OnnxRuntimeBackend(onnx_path, dev, precision=precision, **options)

    from mtl_perception.inference.tensorrt_backend import TensorRTBackend, open_engine
    from mtl_perception.inference.trt_builder import import_tensorrt, onnx_precision_for

    if dev.type != "cuda":
        raise UserError("backend tensorrt runs on a CUDA GPU only; this torch sees none (use --backend onnxruntime)")
    source = path
    if path.suffix in CHECKPOINT_SUFFIXES:
        graph_precision = onnx_precision_for(import_tensorrt().__version__, precision)
        source = _as_onnx(path, cache_dir, graph_precision, argmax=True)
    options.setdefault("max_batch", _engine_batch(source, batch))
    backend = TensorRTBackend(open_engine(source, dev, precision, cache_dir, **options), dev)
    if precision is not None and backend.precision != precision:
        raise UserError(f"{path} is a {backend.precision} engine, not {precision}")
    return backend


def _engine_batch(source: Path, batch: int) -> int:
    """The batch to build an engine of ``source`` for: ``batch`` where its graph takes one, 1
    for a fixed-shape ONNX (its cameras then run one at a time, as the log says)."""
    if batch <= 1 or source.suffix != ".onnx":
        return 1  # an .engine was built already: it takes what its profile says
    from mtl_perception.inference.metadata import read_onnx_metadata

    if read_onnx_metadata(str(source)).dynamic:
        return batch
    LOG.warning("%s is a fixed-shape ONNX (batch 1): its %d images per round run one at a time; "
                "export with --dynamic for one batch", source.name, batch)
    return 1


def _as_onnx(path: Path, cache_dir: Path, precision: str, argmax: bool = False) -> Path:
    """``path`` itself if it is ONNX, else the checkpoint exported (dynamic axes) into the cache."""
    if path.suffix == ".onnx":
        return path
    if path.suffix not in CHECKPOINT_SUFFIXES:
        raise UserError(f"expected a checkpoint (.pt) or an .onnx model, got {path}")
    from mtl_perception.inference.onnx_export import cached_onnx

    return cached_onnx(path, cache_dir, dynamic=True, precision=precision, argmax=argmax)
