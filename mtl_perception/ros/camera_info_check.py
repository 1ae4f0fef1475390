"""Is a camera_info usable for metric depth and points? The reason when it is not.

A driver without calibration sends K = 0; a broken one NaN, inf or negative focal lengths; a
remapping mistake pairs the image with another camera's info. Used as they are, NaN cx gives
a cloud of NaN points, fx = inf all-+inf depth (the sky code) and an empty cloud, an info of
another aspect ratio a skewed projection, all without a word. The node refuses such an info
(and uses the model's training camera instead, with a throttled warning and a line in
/diagnostics); this module only decides, so it needs no ROS.
"""
from __future__ import annotations

import math
from typing import Any

from mtl_perception.inference.camera import pixel_map

#: Focal length range, as a multiple of the image width, that a real lens can have: a
#: 180-degree fisheye is about 0.3 x width, a long telephoto some 20 x.
FX_PER_WIDTH = (0.05, 200.0)
#: How far the image's aspect ratio may differ from the info's sensor window (relative):
#: binning and a driver's resize keep it; another camera's info does not.
ASPECT_TOLERANCE = 0.02


def refusal(info: Any, width: int, height: int, use_baseline: bool = False) -> str | None:
    """Why ``info`` cannot describe a ``width`` x ``height`` image, or None when it can.

    ``use_baseline``: P's stereo baseline will be used, so P must be finite too.
    """
    k = [float(x) for x in info.k]
    if len(k) != 9 or not any(k):
        return "K is zero (camera not calibrated)"
    if not all(math.isfinite(x) for x in k):
        return f"K is not finite (fx {k[0]}, fy {k[4]}, cx {k[2]}, cy {k[5]})"
    fx, fy, cx, cy = k[0], k[4], k[2], k[5]
    if fx <= 0 or fy <= 0:
        return f"focal length must be positive (fx {fx}, fy {fy})"
    if info.width <= 0 or info.height <= 0:
        return f"size is zero ({info.width}x{info.height})"
    low, high = FX_PER_WIDTH
    for name, f, size in (("fx", fx, info.width), ("fy", fy, info.height)):
        if not low * size <= f <= high * size:
            return f"{name} {f:g} is implausible for a {info.width}x{info.height} sensor"
    if not (0 <= cx <= info.width and 0 <= cy <= info.height):
        return f"principal point ({cx:g}, {cy:g}) lies outside the {info.width}x{info.height} sensor"
    scale = pixel_map(info, width, height)  # sensor window (ROI, binning) -> received image
    if abs(scale.su / scale.sv - 1.0) > ASPECT_TOLERANCE:
        return (
            f"its {info.width}x{info.height} sensor (ROI {info.roi.width}x{info.roi.height}) does not have "
            f"the aspect ratio of the {width}x{height} image (another camera?)"
        )
    if use_baseline and not all(math.isfinite(float(x)) for x in info.p):
        return "P is not finite (use_camera_info_baseline needs its baseline)"
    return None
