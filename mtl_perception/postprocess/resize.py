"""Resizing and blending of output images, with the fast kernel of the tensor's device.

On the CPU these are OpenCV's resize and addWeighted (SIMD, and threaded for large images):
torch's generic CPU kernels are several times slower for the camera-sized images of the
``output_resolution: input`` mode (measured with ``mtl-perception bench inference``). On a
GPU they stay torch operations on the device. Both follow the pixel-centre convention
(``align_corners=False``; OpenCV's ``INTER_NEAREST_EXACT`` and ``INTER_LINEAR``).

Tensors in, tensors out: a CPU tensor and the numpy array OpenCV sees share memory, so no
copy is made on the way in; OpenCV allocates the result.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F


def _cv(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.numpy())


def nearest(t: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(H, W) or (H, W, C) map to ``height`` x ``width``, pixel-centre nearest (ids, colours of ids).

    Colourising ids and then resizing nearest gives exactly the colours of the resized ids,
    so colour images of labels are made at the network's resolution and resized.
    """
    if tuple(t.shape[:2]) == (height, width):
        return t
    if t.device.type == "cpu" and t.dtype in (torch.uint8, torch.int16, torch.float32):
        return torch.from_numpy(cv2.resize(_cv(t), (width, height), interpolation=cv2.INTER_NEAREST_EXACT))
    channels_last = t.dim() == 3
    x = (t.permute(2, 0, 1) if channels_last else t[None])[None]
    if x.dtype not in (torch.uint8, torch.float32):
        out = F.interpolate(x.float(), size=(height, width), mode="nearest-exact").to(t.dtype)
    else:
        out = F.interpolate(x, size=(height, width), mode="nearest-exact")
    return out[0].permute(1, 2, 0) if channels_last else out[0, 0]


def linear(t: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(H, W) float32 or (H, W, 3) uint8 image to ``height`` x ``width``, bilinear."""
    if tuple(t.shape[:2]) == (height, width):
        return t
    if t.device.type == "cpu":
        return torch.from_numpy(cv2.resize(_cv(t), (width, height), interpolation=cv2.INTER_LINEAR))
    channels_last = t.dim() == 3
    x = (t.permute(2, 0, 1) if channels_last else t[None])[None].float()
    out = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)
    out = out[0].permute(1, 2, 0) if channels_last else out[0, 0]
    return out.round().clamp(0, 255).to(torch.uint8) if t.dtype == torch.uint8 else out.to(t.dtype)


def blend(color: torch.Tensor, image: torch.Tensor, alpha: float) -> torch.Tensor:
    """``alpha * color + (1 - alpha) * image``, rounded, for two (H, W, 3) uint8 images."""
    if color.device.type == "cpu":
        return torch.from_numpy(cv2.addWeighted(_cv(color), alpha, _cv(image), 1.0 - alpha, 0.0))
    return (alpha * color.float() + (1.0 - alpha) * image.float()).round().to(torch.uint8)


def swap_channels(image: torch.Tensor) -> torch.Tensor:
    """(H, W, 3) uint8 BGR <-> RGB (OpenCV's SIMD conversion on the CPU)."""
    if image.device.type == "cpu":
        return torch.from_numpy(cv2.cvtColor(_cv(image), cv2.COLOR_BGR2RGB))
    return image.flip(-1)
