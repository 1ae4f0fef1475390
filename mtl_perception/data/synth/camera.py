"""The pinhole camera of the synthetic scenes: intrinsics, mounting, per-pixel rays, JSON.

World frame (metres): X right, Y down, Z forward along the street; Y = 0 is the road surface.
The camera sits at (0, -mount_height, z) and is pitched down by ``pitch`` with no roll or yaw,
so a pixel's ray direction in the world frame is *separable*: its X component depends only on
the column and its Y and Z components only on the row. The renderer relies on that to intersect
whole rows or columns with a plane in one vectorised step.

Rays are scaled so that their component along the optical axis is 1: the ray parameter ``t``
of a hit *is* the depth Z of the camera frame, and the disparity is ``fx * baseline / t``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mtl_perception.data.cityscapes_camera import CITYSCAPES_BASELINE, CITYSCAPES_FX, CITYSCAPES_WIDTH

#: Forward offset of the camera from the vehicle origin, as in Cityscapes' ``extrinsic.x``.
MOUNT_X = 1.7


@dataclass(frozen=True)
class Rays:
    """Per-pixel ray directions in the (camera-centred) world frame, with z_camera = 1."""

    dx: np.ndarray  # (W,) float32, X component per column
    dy: np.ndarray  # (H,) float32, Y component per row (down)
    dz: np.ndarray  # (H,) float32, Z component per row (forward)


@dataclass(frozen=True)
class Camera:
    """Intrinsics at the written image size and the mounting on the vehicle."""

    width: int
    height: int
    fx: float
    fy: float
    u0: float
    v0: float
    mount_height: float  # camera centre above the road (m)
    pitch: float  # radians, positive looks down (Cityscapes convention)
    baseline: float  # stereo baseline (m) that turns depth into disparity

    def rays(self) -> Rays:
        """Ray of each pixel centre; pixel (row r, column c) is at image point (u=c, v=r)."""
        xc = (np.arange(self.width, dtype=np.float64) - self.u0) / self.fx
        yc = (np.arange(self.height, dtype=np.float64) - self.v0) / self.fy
        c, s = np.cos(self.pitch), np.sin(self.pitch)
        return Rays(
            dx=xc.astype(np.float32),
            dy=(c * yc + s).astype(np.float32),
            dz=(c - s * yc).astype(np.float32),
        )

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Camera-centred world points (N, 3) -> image u, v and camera depth z (no clipping)."""
        c, s = np.cos(self.pitch), np.sin(self.pitch)
        x, y, z = points[:, 0], points[:, 1], points[:, 2]
        yc = c * y - s * z
        zc = s * y + c * z
        return self.u0 + self.fx * x / zc, self.v0 + self.fy * yc / zc, zc

    def to_cityscapes(self) -> dict:
        """The Cityscapes ``*_camera.json`` content (intrinsics at the written width)."""
        return {
            "extrinsic": {
                "baseline": round(self.baseline, 6),
                "pitch": round(self.pitch, 6),
                "roll": 0.0,
                "x": MOUNT_X,
                "y": 0.0,
                "yaw": 0.0,
                "z": round(self.mount_height, 6),
            },
            "intrinsic": {
                "fx": round(self.fx, 6),
                "fy": round(self.fy, 6),
                "u0": round(self.u0, 6),
                "v0": round(self.v0, 6),
            },
        }


def random_camera(
    rng: np.random.Generator, height: int, width: int, baseline: float = CITYSCAPES_BASELINE
) -> Camera:
    """A camera like Cityscapes' (focal length scaled to ``width``), jittered per scene, on a rig
    with one fixed stereo ``baseline`` (m) for the whole dataset.

    The baseline is fixed because a real rig's is: a monocular network cannot see a baseline
    drawn per scene, so a random one only adds a disparity error floor (~0.17 px measured)
    and makes the network's disparity refer to no rig at all. The draw that used to pick it is
    still taken (and discarded), so every other value of every scene stays as it was for the
    same seed. Values are rounded to what the JSON stores, so geometry rendered with this
    camera and geometry recomputed from the written file agree exactly.
    """
    fx = round(CITYSCAPES_FX * width / CITYSCAPES_WIDTH * rng.uniform(0.95, 1.05), 6)
    return Camera(
        width=width,
        height=height,
        fx=fx,
        fy=fx,
        u0=round(width / 2 + rng.normal(0, 0.01) * width, 6),
        v0=round(height / 2 + rng.normal(0, 0.015) * height, 6),
        mount_height=round(rng.uniform(1.2, 1.5), 6),
        pitch=round(rng.uniform(0.01, 0.05), 6),
        baseline=_fixed_baseline(rng, baseline),
    )


def _fixed_baseline(rng: np.random.Generator, baseline: float) -> float:
    rng.uniform(0.2, 0.23)  # the former per-scene draw: keeps the generator's sequence unchanged
    return round(float(baseline), 6)
