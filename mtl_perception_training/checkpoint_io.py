"""Training checkpoints: atomic writes, what a resume needs, and the random-number state of a run
(they are read by ``mtl_perception.model.checkpoint.read_checkpoint``, the one reader).

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts so that it loads
with ``torch.load(weights_only=True)``, which never runs code from the file. That is why the
random states of Python and NumPy are stored as tensors and plain numbers rather than as the
tuples their ``getstate`` functions return. Writes go to a temporary file renamed over the
target, so a crash, Ctrl-C or full disk never leaves a half-written ``last.pt``.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from mtl_perception.errors import UserError
from mtl_perception.io_utils import atomic_write

#: Version of the trainer's checkpoint layout; bumped when keys change meaning.
CHECKPOINT_FORMAT = 1
#: What ``last.pt`` holds beyond the weights, and ``--resume`` needs.
RESUME_KEYS = ("weighting", "optimizer", "scheduler", "scaler", "step", "rng")


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def check_resumable(ckpt: Mapping[str, Any], path: Path) -> None:
    """``UserError`` unless ``ckpt`` holds what an exact resume needs (a ``best.pt`` or a release does not)."""
    missing = [k for k in RESUME_KEYS if k not in ckpt]
    if missing:
        raise UserError(
            f"--resume: {path} is not resumable (it has no {', '.join(missing)}: a best.pt or a release, "
            "not a last.pt); to start from its weights use --set train.init_from=FILE in a new --out"
        )


def capture_rng_state() -> dict[str, Any]:
    """Python, NumPy, torch (and CUDA) random states as tensors and plain numbers."""
    version, py_state, gauss = random.getstate()
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": {"version": version, "state": torch.tensor(py_state, dtype=torch.int64), "gauss": gauss},
        "numpy": {
            "kind": np_kind,
            "keys": torch.from_numpy(np_keys.astype(np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "gauss": float(np_gauss),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of ``capture_rng_state``; CUDA states only on a machine with as many GPUs."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"].tolist()), py["gauss"]))
    npst = state["numpy"]
    np.random.set_state(
        (npst["kind"], npst["keys"].numpy().astype(np.uint32), npst["pos"], npst["has_gauss"], npst["gauss"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
