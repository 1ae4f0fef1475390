"""Deployment: backends (torch, onnxruntime, tensorrt), engine cache, and the Pipeline.

``from mtl_perception.inference import Pipeline, create_backend, CameraModel`` works; the
names are imported on first use so that importing this package (e.g. for ``--help``) does not
load torch.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Backend": "mtl_perception.inference.backend",
    "CameraModel": "mtl_perception.inference.camera",
    "ModelMetadata": "mtl_perception.inference.metadata",
    "create_backend": "mtl_perception.inference.factory",
    "Pipeline": "mtl_perception.inference.pipeline",
    "PipelineResult": "mtl_perception.inference.pipeline",
    "InstanceInfo": "mtl_perception.inference.pipeline",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
