"""TensorRT engine cache: an engine is reused only on the exact set-up it was built for.

An engine is specific to the model, the GPU (name and compute capability), the TensorRT
version, the precision and the input shapes; TensorRT refuses, or worse, mis-runs, an engine
from another set-up. The cache key holds exactly these five things; an engine is rebuilt only
when one of them changes, and the log says which one did.

Each engine ``<name>-<digest>.engine`` has a JSON sidecar ``<...>.engine.json`` holding its key
and the model metadata (engines carry no ONNX metadata). The engine file itself stays plain
TensorRT, so ``trtexec --loadEngine`` still reads it. This module does not import tensorrt:
all of it is testable without a GPU.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from mtl_perception.errors import UserError
from mtl_perception.inference.metadata import ModelMetadata
from mtl_perception.io_utils import atomic_write, atomic_write_text

LOG = logging.getLogger(__name__)
SIDECAR_SUFFIX = ".json"

#: Human names of the key fields, for messages.
_FIELD_NAMES = {
    "model_hash": "model",
    "gpu": "GPU",
    "compute_capability": "compute capability",
    "tensorrt": "TensorRT",
    "precision": "precision",
    "input_shape": "input shape",
}


@dataclass(frozen=True)
class EngineKey:
    """What an engine is valid for. ``model_hash``: content hash of the ONNX it was built from;
    ``input_shape``: the optimisation profile, e.g. ``1x3x256x512`` or ``min:opt:max``."""

    model_hash: str
    gpu: str
    compute_capability: str
    tensorrt: str
    precision: str
    input_shape: str

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]

    def differences(self, other: "EngineKey") -> list[str]:
        """``["TensorRT 10.3.0 -> 10.4.1", ...]``: what changed from ``self`` to ``other``."""
        return [
            f"{_FIELD_NAMES[f.name]} {getattr(self, f.name)} -> {getattr(other, f.name)}"
            for f in fields(self)
            if getattr(self, f.name) != getattr(other, f.name)
        ]

    def describe(self) -> str:
        return (
            f"{self.gpu} (compute {self.compute_capability}), TensorRT {self.tensorrt}, "
            f"{self.precision}, input {self.input_shape}"
        )


def sidecar_path(engine_path: str | os.PathLike) -> Path:
    return Path(str(engine_path) + SIDECAR_SUFFIX)


def read_sidecar(engine_path: str | os.PathLike) -> tuple[EngineKey, ModelMetadata]:
    """The key and model metadata stored next to an engine; ``UserError`` when missing or corrupt."""
    engine_path = Path(engine_path)
    side = sidecar_path(engine_path)
    if not engine_path.is_file():
        raise UserError(f"TensorRT engine not found: {engine_path}")
    if not side.is_file():
        raise UserError(
            f"{engine_path} has no {side.name} next to it (what it was built for, the model's facts): "
            "build engines with `mtl-perception export --engine`"
        )
    try:
        data = json.loads(side.read_text())
        key = EngineKey(**data["key"])
        metadata = ModelMetadata.from_props(data["metadata"], str(side))
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{side} is corrupt ({exc}): delete the engine and its .json and rebuild") from None
    return key, metadata


def check_platform(built_for: EngineKey, here: EngineKey, engine_path: str | os.PathLike) -> None:
    """One clear ``UserError`` when an engine was built for another GPU or TensorRT version."""
    changed = [
        f"{_FIELD_NAMES[name]} {getattr(built_for, name)} (here: {getattr(here, name)})"
        for name in ("gpu", "compute_capability", "tensorrt")
        if getattr(built_for, name) != getattr(here, name)
    ]
    if changed:
        raise UserError(
            f"TensorRT engine {engine_path} was built for another set-up: {', '.join(changed)}; "
            "engines only run where they were built: pass the .onnx (or checkpoint) instead, and the engine "
            "is rebuilt and cached for this machine, or rebuild it with `mtl-perception export --engine`"
        )


class EngineCache:
    """Engines under ``root/engines``, named by the model and the key's digest."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.dir = Path(root) / "engines"

    def path_for(self, key: EngineKey, name: str) -> Path:
        return self.dir / f"{name}-{key.digest()}.engine"

    def lookup(self, key: EngineKey, name: str) -> Path | None:
        """The cached engine for ``key``, or None (logging why, if an engine of another key exists)."""
        path = self.path_for(key, name)
        if path.is_file() and sidecar_path(path).is_file():
            return path
        for other in sorted(self.dir.glob(f"{name}-*.engine")):
            try:
                old, _ = read_sidecar(other)
            except UserError:
                continue
            LOG.info("cached engine %s does not fit (%s)", other.name, "; ".join(old.differences(key)))
        return None

    def store(self, key: EngineKey, name: str, engine: bytes, metadata: ModelMetadata) -> Path:
        """Write the engine and its sidecar (sidecar last: an engine without one is never used)."""
        path = self.path_for(key, name)
        atomic_write(path, lambda tmp: Path(tmp).write_bytes(engine))
        write_sidecar(path, key, metadata)
        return path


def write_sidecar(engine_path: str | os.PathLike, key: EngineKey, metadata: ModelMetadata) -> None:
    payload = {"key": asdict(key), "metadata": metadata.to_props()}
    atomic_write_text(sidecar_path(engine_path), json.dumps(payload, indent=2) + "\n")
