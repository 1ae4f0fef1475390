"""Colour images for RViz: Cityscapes palette, per-instance colours, depth colour map.

All maps are lookup tables applied with one gather so they run on the GPU as cheaply as on
the CPU. Depth is coloured by inverse depth (near = warm) with matplotlib's ``turbo`` table,
which keeps near obstacles (what a driver cares about) well separated.
"""
from __future__ import annotations

import numpy as np
import torch

from mtl_perception.data.labels import PALETTE
from mtl_perception.postprocess.resize import blend


def _turbo_lut() -> np.ndarray:
    from matplotlib import colormaps

    return (colormaps["turbo"](np.linspace(0.0, 1.0, 256))[:, :3] * 255).round().astype(np.uint8)


def _instance_lut(n: int = 4096, seed: int = 7) -> np.ndarray:
    """Distinct, bright, deterministic colours; id 0 (no instance) is black."""
    rng = np.random.default_rng(seed)
    lut = rng.integers(64, 256, size=(n, 3), dtype=np.uint8)
    lut[0] = 0
    return lut


TURBO = _turbo_lut()
INSTANCE_COLORS = _instance_lut()


def _lut(table: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(table, device=device)


def colorize_semantic(train_ids: torch.Tensor, image: torch.Tensor | None = None, alpha: float = 0.5) -> torch.Tensor:
    """(H, W) train ids (255 = none) -> (H, W, 3) uint8; blended over ``image`` (H, W, 3 uint8) if given."""
    color = _lut(PALETTE, train_ids.device)[train_ids.long()]
    if image is None or alpha >= 1.0:
        return color
    return blend(color, image, alpha)


def colorize_instances(instance_ids: torch.Tensor) -> torch.Tensor:
    """(H, W) instance ids (0 = none) -> (H, W, 3) uint8, one colour per id."""
    ids = instance_ids.long()
    index = torch.where(ids > 0, (ids - 1) % (len(INSTANCE_COLORS) - 1) + 1, 0)
    return _lut(INSTANCE_COLORS, instance_ids.device)[index]


def colorize_depth(depth: torch.Tensor, min_depth: float = 3.0, max_depth: float = 80.0) -> torch.Tensor:
    """(H, W) depth in metres -> (H, W, 3) uint8 turbo colours; NaN and +inf are black."""
    inv = (1.0 / depth.clamp(min_depth, max_depth) - 1.0 / max_depth) / (1.0 / min_depth - 1.0 / max_depth)
    index = (inv * 255).round().long().clamp(0, 255)
    color = _lut(TURBO, depth.device)[index]
    return color.masked_fill(~torch.isfinite(depth)[..., None], 0)
