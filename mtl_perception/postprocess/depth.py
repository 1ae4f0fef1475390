"""Disparity (what the network predicts) to metric depth (what a robot uses).

Z = fx * B / d with fx in pixels at the disparity map's width and B the stereo baseline of the
camera the model was trained on (DESIGN.md section 3). REP 118 depth images use metres, NaN
where unknown and +inf for "too far to measure": sky pixels get +inf, pixels whose disparity
is below ``min_disparity`` (non-sky) or non-finite get NaN. Works on any torch device so the
pipeline keeps it on the GPU.
"""
from __future__ import annotations

import torch


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
    # One fused pass: NaN fails the comparison, +inf is excluded explicitly (both unknown).
    known = (disparity >= min_disparity) & (disparity < float("inf"))
    depth = torch.where(known, (fx * baseline) / disparity, float("nan"))
    if sky_mask is not None:
        depth = depth.masked_fill(sky_mask, float("inf"))
    return depth
