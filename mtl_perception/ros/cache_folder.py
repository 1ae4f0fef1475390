"""A cache folder the node can write, or a temporary one and a note that says so.

The node writes into the cache folder before it does anything else (the Fast DDS profile,
``middleware.py``) and while it loads its model (the ONNX export of a checkpoint, the
TensorRT engine). A read-only one (a container's read-only root, a shared install) must not
end in a ``PermissionError`` traceback: the node falls back to a fresh temporary folder for
this process (removed at exit), logs why, and reports it in /diagnostics (exports and
engines are then rebuilt at every start, which the note says).
"""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

from mtl_perception.inference.cache import CACHE_ENV, default_cache_dir


def writable_cache_dir() -> str | None:
    """Make sure the cache folder is writable; None when it is, else the note of the fallback.

    The fallback is put into ``os.environ[CACHE_ENV]`` (this process and its children): only
    a process entry point (the node's ``main``) calls this.
    """
    folder = default_cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write_test_"):
            pass
        return None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
    fallback = Path(tempfile.mkdtemp(prefix="mtl_perception_cache_"))
    atexit.register(shutil.rmtree, fallback, ignore_errors=True)  # a run's exports, not a cache for later
    os.environ[CACHE_ENV] = str(fallback)
    return (
        f"cache folder {folder} is not writable ({reason}): using {fallback} for this run "
        f"(ONNX exports and TensorRT engines are rebuilt at every start; set {CACHE_ENV} to a writable folder)"
    )
