"""Pinhole intrinsics of the camera whose images the pipeline sees, and how they scale.

Disparity and focal length both scale with the image width, so metric depth needs fx at the
resolution of the disparity map it is applied to; :meth:`CameraModel.scaled` gives that.
Scaling follows the pixel-centre convention of ``align_corners=False`` resizing (the one the
pipeline uses): a point at pixel ``u`` maps to ``(u + 0.5) * s - 0.5``.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from mtl_perception.errors import UserError


@dataclass(frozen=True)
class CameraModel:
    """fx, fy, cx, cy in pixels for a ``width`` x ``height`` image; ``baseline`` in metres or None.

    ``baseline`` is the stereo baseline the network's disparity refers to. A monocular camera
    has none: the training camera's baseline is used instead (see ``pipeline``).
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
