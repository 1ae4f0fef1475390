"""Disparity ground truth from the z-buffer, and which pixels a stereo rig could measure.

d = fx * B / Z per pixel, never painted. Validity follows what Cityscapes' SGM disparity lacks,
derived from the geometry rather than drawn at random:

- sky: valid with d = 0 (PNG value 1), the paper's convention;
- the ego vehicle's bonnet: invalid;
- the left border: a point at column u with disparity d would appear at u - d in the right
  image; where that is left of the image (u < d) there is no match;
- stereo occlusion: where a nearer surface covers the point in the right image (the band left
  of every object's left edge), there is no match either;
- far surfaces with d < 0.25 px: the PNG stores d in 1/256 px steps, and half a step must
  stay under 1 % of d for Z = fx * B / d to hold to 1 %;
- d > 255.99 px (closer than the 16-bit PNG can store): invalid.
"""
from __future__ import annotations

import numpy as np

from mtl_perception.data.synth.camera import Camera

MIN_DISPARITY = 0.25
MAX_DISPARITY = (65535 - 1) / 256.0


def disparity(camera: Camera, depth: np.ndarray, sky: np.ndarray, no_geometry: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(disparity in pixels at the image width, validity mask including the sky)."""
    surface = ~sky if no_geometry is None else ~sky & ~no_geometry
    with np.errstate(divide="ignore"):
        d = (camera.fx * camera.baseline / depth.astype(np.float64)).astype(np.float32)
    d[~surface] = 0.0
    u = np.arange(camera.width, dtype=np.float32)[None, :]
    valid = surface & (d >= MIN_DISPARITY) & (d <= MAX_DISPARITY) & (u >= d)
    # right-image column of each point; the sky is at infinity, pixels without geometry occlude nothing
    x_right = np.where(surface, u - d, np.where(sky, u, np.inf)).astype(np.float32)
    right_min = np.minimum.accumulate(x_right[:, ::-1], axis=1)[:, ::-1]
    covered = np.zeros_like(valid)
    covered[:, :-1] = right_min[:, 1:] < x_right[:, :-1] - 0.5  # something to the right lands further left: nearer
    valid &= ~covered
    d[~valid] = 0.0
    return d, valid | sky


def encode(d: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Cityscapes disparity PNG values: p = round(256 d) + 1 where valid (sky: 1), 0 where invalid."""
    return np.where(valid, np.round(d.astype(np.float64) * 256.0) + 1.0, 0.0).astype(np.uint16)
