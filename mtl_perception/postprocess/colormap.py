"""Colour images for RViz: Cityscapes palette, per-instance colours, depth colour map.

All maps are lookup tables applied with one gather: on the CPU numpy's ``take`` on the table
(uint8 or int32 indices as they are), 3-5x faster than torch's indexing, which first widens
every index to int64 (docs/measurements.md); on a GPU the same gather in torch on the device. Depth is
coloured by inverse depth (near = warm) with matplotlib's ``turbo`` table, which keeps near
obstacles (what a driver cares about) well separated.
"""
from __future__ import annotations

import functools

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


def _instance_lut16(colors: np.ndarray) -> np.ndarray:
    """The colour of every 16-bit instance id (instance maps are mono16): 0 black, ids from 1
    cycling through ``colors[1:]``, so a gather needs no modulo per pixel."""
    ids = np.arange(1 << 16)
    return colors[np.where(ids > 0, (ids - 1) % (len(colors) - 1) + 1, 0)]


TURBO = _turbo_lut()
INSTANCE_COLORS = _instance_lut()
#: The tables by name, so that each is copied to a GPU once (``_device_table``).
_TABLES: dict[str, np.ndarray] = {"palette": PALETTE, "turbo": TURBO, "instances": _instance_lut16(INSTANCE_COLORS)}


@functools.lru_cache(maxsize=None)
def _device_table(name: str, device: torch.device) -> torch.Tensor:
    """A table on ``device``, copied there once: a copy per frame (192 KiB for the instance
    table) would also stall the GPU stream, host memory being pageable."""
    return torch.as_tensor(_TABLES[name], device=device)


def _gather(name: str, index: torch.Tensor) -> torch.Tensor:
    """``table[index]``: (..., 3) uint8 colours of the (...) integer indices (all < len(table))."""
    if index.device.type == "cpu":
        return torch.from_numpy(np.take(_TABLES[name], index.numpy(), axis=0))
    return _device_table(name, index.device)[index.long()]


def colorize_semantic(train_ids: torch.Tensor, image: torch.Tensor | None = None, alpha: float = 0.5) -> torch.Tensor:
    """(H, W) uint8 train ids (255 = none) -> (H, W, 3) uint8; blended over ``image`` (H, W, 3 uint8) if given."""
    color = _gather("palette", train_ids)
    if image is None or alpha >= 1.0:
        return color
    return blend(color, image, alpha)


def colorize_instances(instance_ids: torch.Tensor) -> torch.Tensor:
    """(H, W) instance ids (0 = none), read as 16-bit like the published mono16 map -> (H, W, 3)
    uint8, one colour per id."""
    return _gather("instances", instance_ids.to(torch.int32) & 0xFFFF)  # int16 -1 -> 65535, as mono16 reads it


def colorize_depth(depth: torch.Tensor, min_depth: float = 3.0, max_depth: float = 80.0) -> torch.Tensor:
    """(H, W) depth in metres -> (H, W, 3) uint8 turbo colours; NaN and +inf are black."""
    if depth.device.type == "cpu":
        return torch.from_numpy(_colorize_depth_numpy(depth.numpy(), min_depth, max_depth))
    return colorize_depth_torch(depth, min_depth, max_depth)


def colorize_depth_torch(depth: torch.Tensor, min_depth: float, max_depth: float) -> torch.Tensor:
    """The GPU branch, in torch alone (a function of its own so tests run it on the CPU)."""
    inv = (1.0 / depth.clamp(min_depth, max_depth) - 1.0 / max_depth) / (1.0 / min_depth - 1.0 / max_depth)
    index = (inv * 255).round().long().clamp(0, 255)
    color = _device_table("turbo", depth.device)[index]
    return color.masked_fill(~torch.isfinite(depth)[..., None], 0)


def _colorize_depth_numpy(depth: np.ndarray, min_depth: float, max_depth: float) -> np.ndarray:
    """The CPU branch: the same arithmetic in place in one float32 buffer, then one uint8 gather."""
    known = np.isfinite(depth)
    inv = np.clip(depth, min_depth, max_depth).astype(np.float32, copy=False)  # a new array: NaN stays NaN
    np.reciprocal(inv, out=inv)
    inv -= np.float32(1.0 / max_depth)
    inv /= np.float32(1.0 / min_depth - 1.0 / max_depth)
    inv *= np.float32(255.0)
    np.rint(inv, out=inv)
    inv[~known] = 0.0  # the cast below must not see NaN; these pixels are blackened anyway
    color = np.take(TURBO, inv.astype(np.uint8), axis=0)
    color[~known] = 0
    return color
