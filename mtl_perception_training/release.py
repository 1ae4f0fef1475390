"""A training checkpoint -> the small file a vehicle (or the package) ships (``mtl-perception release``).

Keeps what ``load_model`` needs (config, weights), what users want to see (step, metrics) and
the learned task weights (a few numbers, so fine-tuning from the release with
``train.init_from`` carries them over instead of restarting every s_i); drops the optimiser
and RNG state, and stores the weights compactly (int8 per output channel for large weights,
float16 for the rest: ``mtl_perception.model.compact``).
"""
from __future__ import annotations

from pathlib import Path

import torch

from mtl_perception.io_utils import atomic_write
from mtl_perception.model.compact import compact_state_dict


def make_release(checkpoint: Path, out: Path, weights: str = "int8") -> dict:
    """Write the release file atomically; return what it holds besides the weights."""
    from mtl_perception.model.checkpoint import model_from_checkpoint, read_checkpoint

    ckpt = read_checkpoint(checkpoint)  # validates the file
    config = dict(ckpt["config"])
    state = model_from_checkpoint(ckpt, checkpoint).state_dict()  # normalised, float32
    packed = compact_state_dict(state) if weights == "int8" else {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    release = {
        "config": config,
        "model": packed,
        "step": int(ckpt.get("step", 0)),
        "metrics": dict(ckpt.get("metrics") or {}),
        "weights": weights,
    }
    if ckpt.get("weighting"):
        release["weighting"] = dict(ckpt["weighting"])
    atomic_write(out, lambda tmp: torch.save(release, tmp))
    return {k: v for k, v in release.items() if k != "model"}
