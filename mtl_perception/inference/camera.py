"""Pinhole intrinsics of the camera whose images the pipeline sees, and how they scale.

The one place where camera calibration is interpreted (the node, the bag tools and the
pipeline all come here):

- :func:`camera_from_info` reads a ``sensor_msgs/CameraInfo`` (any object with its fields;
  no ROS import here) for the image actually received: K refers to the full sensor, a region
  of interest crops it, binning (or a driver's resize) shrinks it;
- :meth:`CameraModel.scaled` gives the same camera for a resized image: disparity and focal
  length both scale with the image width, so metric depth needs fx at the resolution of the
  disparity map it is applied to;
- :func:`info_at` gives the calibration of an *output* image (the network's resolution or the
  camera's), ready to publish as that image's ``camera_info``: K and P mapped to the output
  pixels, binning and ROI cleared (the output is a plain image of its own size), D and R kept.

Scaling follows the pixel-centre convention of ``align_corners=False`` resizing (the one the
pipeline and OpenCV's resize use): a point at pixel ``u`` maps to ``(u + 0.5) * s - 0.5``.
image_proc's resize scales ``cx`` by ``s`` alone, which is off by ``(s - 1) / 2`` pixels
(3.5 px for a 1/8 shrink at the principal point); the mapping here matches the pixels.

The stereo baseline: the network predicts disparity for the stereo rig it was *trained* on,
so metric depth uses the training baseline from the model metadata. A camera_info's own
``P[3]`` (``Tx = -fx * B`` of a right camera) describes *that* rig, not the network's; it is
read only when the caller asks for it (the node's ``use_camera_info_baseline``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Sequence

from mtl_perception.errors import UserError


@dataclass(frozen=True)
class CameraModel:
    """fx, fy, cx, cy in pixels for a ``width`` x ``height`` image; ``baseline`` in metres or None.

    ``baseline`` overrides the model's training baseline for metric depth when set; None (the
    usual case) means the training baseline (see ``pipeline``).
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    baseline: float | None = None

    def __post_init__(self) -> None:
        if not (self.fx > 0 and self.fy > 0 and self.width > 0 and self.height > 0):
            raise UserError(f"camera intrinsics must be positive (fx, fy, width, height), got {self}")
        if self.baseline is not None and not self.baseline > 0:
            raise UserError(f"camera baseline must be positive metres, got {self.baseline!r}")

    def scaled(self, width: int, height: int) -> "CameraModel":
        """The same camera for the image resized to ``width`` x ``height``."""
        if (width, height) == (self.width, self.height):
            return self
        sx, sy = width / self.width, height / self.height
        return replace(
            self,
            fx=self.fx * sx,
            fy=self.fy * sy,
            cx=(self.cx + 0.5) * sx - 0.5,
            cy=(self.cy + 0.5) * sy - 0.5,
            width=width,
            height=height,
        )

    @classmethod
    def centred(cls, fx: float, width: int, height: int, baseline: float | None = None) -> "CameraModel":
        """A camera known only by its focal length: square pixels, principal point at the centre."""
        return cls(fx, fx, (width - 1) / 2.0, (height - 1) / 2.0, width, height, baseline)


@dataclass(frozen=True)
class PixelMap:
    """``u_out = su * u_sensor + ou`` (and the same for v): full-sensor pixels -> image pixels."""

    su: float
    ou: float
    sv: float
    ov: float

    def apply(self, matrix: Sequence[float], columns: int) -> list[float]:
        """Rows 0 and 1 of a 3 x ``columns`` projection (K or P) moved by this map (row 2 kept)."""
        m = [float(x) for x in matrix]
        row2 = m[2 * columns : 3 * columns]
        for row, (s, o) in enumerate(((self.su, self.ou), (self.sv, self.ov))):
            for c in range(columns):
                m[row * columns + c] = s * m[row * columns + c] + o * row2[c]
        return m


def _sensor_window(info: Any) -> tuple[float, float, float, float]:
    """(x0, y0, width, height) of the sensor window the image shows, in full-sensor pixels.

    ROI is given in full-resolution (unbinned) sensor pixels (sensor_msgs/CameraInfo);
    binning then shrinks that window to ``roi / binning`` pixels, which is no different from
    a resize and is covered by mapping the window onto the image actually received.
    """
    roi = info.roi
    if roi.width > 0 and roi.height > 0:
        return float(roi.x_offset), float(roi.y_offset), float(roi.width), float(roi.height)
    return 0.0, 0.0, float(info.width), float(info.height)


def pixel_map(info: Any, width: int, height: int) -> PixelMap:
    """The map from ``info``'s full-sensor pixels to those of a ``width`` x ``height`` image of it."""
    x0, y0, w0, h0 = _sensor_window(info)
    su, sv = width / w0, height / h0
    return PixelMap(su, (0.5 - x0) * su - 0.5, sv, (0.5 - y0) * sv - 0.5)


def is_calibrated(info: Any) -> bool:
    """True when ``info`` has a usable K and size (a driver without calibration sends zeros)."""
    k = [float(x) for x in info.k]
    return (
        len(k) == 9
        and all(math.isfinite(x) for x in k)
        and k[0] > 0
        and k[4] > 0
        and info.width > 0
        and info.height > 0
    )


def info_baseline(info: Any) -> float | None:
    """The stereo baseline (m) in ``info``'s P (``P[3] = -fx * B``, right camera), else None."""
    p0, p3 = float(info.p[0]), float(info.p[3])
    return -p3 / p0 if p0 > 0 and p3 < 0 and math.isfinite(p3) else None


def camera_from_info(info: Any, width: int, height: int, use_baseline: bool = False) -> CameraModel | None:
    """Intrinsics of ``info`` for the ``width`` x ``height`` image received; None if uncalibrated.

    ``use_baseline``: take the stereo baseline from ``info``'s P (see the module docstring);
    by default the camera carries none and depth uses the model's training baseline.
    """
    if not is_calibrated(info):
        return None
    k = pixel_map(info, width, height).apply(info.k, 3)
    baseline = info_baseline(info) if use_baseline else None
    return CameraModel(k[0], k[4], k[2], k[5], width, height, baseline)


@dataclass(frozen=True)
class InfoFields:
    """The calibration fields of a ``sensor_msgs/CameraInfo`` for one output image."""

    width: int
    height: int
    distortion_model: str
    d: tuple[float, ...]
    k: tuple[float, ...]
    r: tuple[float, ...]
    p: tuple[float, ...]


_IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


def info_at(camera: CameraModel, source: Any | None = None) -> InfoFields:
    """The camera_info of an output image whose intrinsics are ``camera``.

    With ``source`` (the camera_info the input came with), P, D, R and the distortion model
    follow it: P is mapped to the output pixels like K (a rectified camera's P keeps its own
    principal point and ``Tx``), D and R do not depend on the resolution. Without one, the
    camera is the model's training camera: no distortion, P = [K | 0] (monocular).
    """
    k = (camera.fx, 0.0, camera.cx, 0.0, camera.fy, camera.cy, 0.0, 0.0, 1.0)
    if source is None or not is_calibrated(source):
        p = (camera.fx, 0.0, camera.cx, 0.0, 0.0, camera.fy, camera.cy, 0.0, 0.0, 0.0, 1.0, 0.0)
        return InfoFields(camera.width, camera.height, "plumb_bob", (0.0,) * 5, k, _IDENTITY, p)
    p_in = [float(x) for x in source.p]
    if len(p_in) == 12 and p_in[0] > 0:
        p = tuple(pixel_map(source, camera.width, camera.height).apply(p_in, 4))
    else:  # no projection matrix: the intrinsics of K, monocular
        p = (camera.fx, 0.0, camera.cx, 0.0, 0.0, camera.fy, camera.cy, 0.0, 0.0, 0.0, 1.0, 0.0)
    r = tuple(float(x) for x in source.r) if any(float(x) for x in source.r) else _IDENTITY
    return InfoFields(
        camera.width, camera.height, source.distortion_model or "plumb_bob",
        tuple(float(x) for x in source.d), k, r, p,
    )
