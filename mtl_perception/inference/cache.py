"""Where derived model files (exported ONNX, TensorRT engines, timing caches) are kept.

Derived files are named by the content hash of what they were made from, so a changed
checkpoint or ONNX file can never be served a stale derivative.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

#: Environment variable that moves the cache (e.g. to persistent storage on a vehicle).
CACHE_ENV = "MTL_PERCEPTION_CACHE"


def default_cache_dir() -> Path:
    """``$MTL_PERCEPTION_CACHE``, else ``$XDG_CACHE_HOME/mtl_perception``, else ``~/.cache/mtl_perception``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mtl_perception"


def file_digest(path: str | os.PathLike, length: int = 16) -> str:
    """Hex SHA-256 prefix of a file's bytes, read in chunks (model files reach hundreds of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:length]
