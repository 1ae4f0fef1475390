"""Training augmentation: random scale and crop, horizontal flip, colour jitter.

Geometric augmentation is expressed as a ``targets.View`` and applied while resampling, so
every target is rebuilt consistently for the new geometry instead of being patched afterwards:

- Scale s: the source is resampled to ``round(s * H) x round(s * W)`` and an H x W window is
  cut at a random offset (when s < 1 the image sits at a random place in a padded window).
  Instance vectors are recomputed at the scaled size, so they scale by s. Disparity and fx
  both scale by s: a zoomed image is what a camera with focal length s * fx sees, the metric
  depth Z = fx * B / d is unchanged. (Reading the zoom as "the scene is s times closer" with
  an unchanged fx gives the same disparity target, only a different Z.)
- Flip: everything is mirrored; the instance centroid is mirrored too and the vectors are
  recomputed from it, which equals negating dx of the unflipped vectors.
- Colour jitter j: brightness, contrast and saturation factors drawn from [1 - j, 1 + j].

The configuration is a dict, e.g. ``{scale: [0.75, 1.5], flip: true, color_jitter: 0.2}``;
a missing key, None or false turns that part off.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import cv2
import numpy as np

from mtl_perception.data.targets import View
from mtl_perception.errors import ConfigError

_KEYS = ("scale", "flip", "color_jitter")


@dataclass(frozen=True)
class AugmentConfig:
    """Which augmentations are on; ``None``/``False`` means off."""

    scale: tuple[float, float] | None = None
    flip: bool = False
    color_jitter: float | None = None

    @classmethod
    def from_dict(cls, config: Mapping[str, Any] | None) -> "AugmentConfig":
        """Parse and validate an ``augment:`` config section (None or {} = no augmentation)."""
        if not config:
            return cls()
        if not isinstance(config, Mapping):
            raise ConfigError(f"augment must be a mapping like {{scale: [0.75, 1.5], flip: true}}, got {config!r}")
        unknown = sorted(set(config) - set(_KEYS))
        if unknown:
            raise ConfigError(f"augment: unknown key(s) {unknown}; known keys are {list(_KEYS)}")
        scale = config.get("scale")
        if scale is not None and scale is not False:
            try:
                low, high = (float(v) for v in scale)
            except (TypeError, ValueError):
                raise ConfigError(f"augment.scale must be [min, max], got {scale!r}") from None
            if not 0 < low <= high:
                raise ConfigError(f"augment.scale must satisfy 0 < min <= max, got {scale!r}")
            scale = (low, high)
        else:
            scale = None
        flip = config.get("flip") or False
        if not isinstance(flip, bool):
            raise ConfigError(f"augment.flip must be true or false, got {flip!r}")
        jitter = config.get("color_jitter")
        if jitter is not None and jitter is not False:
            if isinstance(jitter, bool) or not isinstance(jitter, (int, float)) or not 0 <= jitter < 1:
                raise ConfigError(f"augment.color_jitter must be a number in [0, 1), got {jitter!r}")
            jitter = float(jitter) or None
        else:
            jitter = None
        return cls(scale=scale, flip=flip, color_jitter=jitter)

    @property
    def max_scale(self) -> float:
        """The largest scale drawn (1 without scale augmentation)."""
        return self.scale[1] if self.scale else 1.0


@dataclass(frozen=True)
class AugmentParams:
    """One draw: the geometric view and the colour factors (1 = unchanged)."""

    view: View
    brightness: float = 1.0
    contrast: float = 1.0
    saturation: float = 1.0


def _offset(scaled: int, out: int, rng: np.random.Generator) -> int:
    """Random window offset: inside the scaled image, or placing a small image inside the window."""
    low, high = min(0, scaled - out), max(0, scaled - out)
    return int(rng.integers(low, high + 1))


def draw(config: AugmentConfig, out_size: tuple[int, int], rng: np.random.Generator) -> AugmentParams:
    """Draw the augmentation of one sample for an output of ``out_size`` (H, W)."""
    h, w = out_size
    scaled = out_size
    if config.scale:
        s = float(rng.uniform(*config.scale))
        scaled = (max(1, round(h * s)), max(1, round(w * s)))
    view = View(
        scaled=scaled,
        offset=(_offset(scaled[0], h, rng), _offset(scaled[1], w, rng)),
        flip=bool(config.flip and rng.random() < 0.5),
    )
    factors = [1.0, 1.0, 1.0]
    if config.color_jitter:
        j = config.color_jitter
        factors = [float(f) for f in rng.uniform(1 - j, 1 + j, size=3)]
    return AugmentParams(view, *factors)


def color_jitter(image: np.ndarray, params: AugmentParams) -> np.ndarray:
    """Brightness, contrast, saturation (in that order) on an H x W x 3 uint8 RGB image.

    As torchvision's ColorJitter on uint8 images: brightness scales, contrast blends with the
    image's mean grey, saturation with each pixel's grey, each step rounded and clipped to
    0..255 (OpenCV's saturating arithmetic, several times faster than float numpy here).
    """
    if params.brightness == params.contrast == params.saturation == 1.0:
        return image
    x = image
    if params.brightness != 1.0:
        x = cv2.addWeighted(x, params.brightness, x, 0.0, 0.0)
    if params.contrast != 1.0:
        mean = float(cv2.cvtColor(x, cv2.COLOR_RGB2GRAY).mean())
        x = cv2.addWeighted(x, params.contrast, x, 0.0, mean * (1.0 - params.contrast))
    if params.saturation != 1.0:
        grey = cv2.cvtColor(cv2.cvtColor(x, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
        x = cv2.addWeighted(x, params.saturation, grey, 1.0 - params.saturation, 0.0)
    return x
