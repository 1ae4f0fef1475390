"""Disparity (what the network predicts) to metric depth (what a robot uses).

Z = fx * B / d with fx in pixels at the disparity map's width and B the stereo baseline of the
camera the model was trained on (DESIGN.md section 3). REP 118 depth images use metres, NaN
where unknown and +inf for "too far to measure": sky pixels get +inf, pixels whose disparity
is below ``min_disparity`` (non-sky) or non-finite get NaN. On a GPU it stays a torch
operation on the device; on the CPU it runs in numpy, one masked division in place, where
torch's chain of comparisons, division, ``where`` and ``masked_fill`` makes a new full-size
array at every step (about 3x slower for a 1024x2048 camera: docs/measurements.md).
"""
from __future__ import annotations

import numpy as np
import torch

from mtl_perception.data.labels import SKY_TRAIN_ID


def disparity_to_depth(
    disparity: torch.Tensor,
    fx: float,
    baseline: float,
    sky_mask: torch.Tensor | None = None,
    min_disparity: float = 0.05,
) -> torch.Tensor:
    """Convert disparity in pixels to depth in metres (same shape; float32).

    ``fx`` must be the focal length at the disparity map's resolution: disparity scales with
    image width, and so does fx, so Z is resolution-independent.
    """
    disparity = disparity.float()
    if disparity.device.type == "cpu":
        return _disparity_to_depth_numpy(disparity.numpy(), fx * baseline, sky_mask, min_disparity)
    return disparity_to_depth_torch(disparity, fx * baseline, sky_mask, min_disparity)


def sky_mask(train_ids: torch.Tensor) -> torch.Tensor:
    """Where the semantic head sees sky (those pixels get +inf depth). On the CPU a numpy
    compare: torch's uint8 ``==`` is over 10x slower there (docs/measurements.md)."""
    if train_ids.device.type == "cpu":
        return torch.from_numpy(train_ids.numpy() == SKY_TRAIN_ID)
    return train_ids == SKY_TRAIN_ID


def disparity_to_depth_torch(
    disparity: torch.Tensor, focal_baseline: float, sky_mask: torch.Tensor | None, min_disparity: float
) -> torch.Tensor:
    """The GPU branch, in torch alone (a function of its own so tests run it on the CPU)."""
    # One fused pass on the device: NaN fails the comparison, +inf is excluded explicitly.
    known = (disparity >= min_disparity) & (disparity < float("inf"))
    depth = torch.where(known, focal_baseline / disparity, float("nan"))
    if sky_mask is not None:
        depth = depth.masked_fill(sky_mask, float("inf"))
    return depth


def _disparity_to_depth_numpy(
    disparity: np.ndarray, focal_baseline: float, sky_mask: torch.Tensor | None, min_disparity: float
) -> torch.Tensor:
    """The CPU branch: the division only where the disparity is known, into the NaN-filled result."""
    known = disparity >= min_disparity  # NaN fails the comparison
    known &= disparity < np.inf
    depth = np.full(disparity.shape, np.nan, np.float32)
    np.divide(np.float32(focal_baseline), disparity, out=depth, where=known)
    if sky_mask is not None:
        np.putmask(depth, sky_mask.numpy(), np.inf)
    return torch.from_numpy(depth)
