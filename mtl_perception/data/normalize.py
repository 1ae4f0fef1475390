"""Image normalisation shared by training, export and every inference backend.

ImageNet statistics, because backbones start from torchvision's ImageNet weights; exported
models carry these numbers in their metadata so no runtime hard-codes them.
"""
from __future__ import annotations

import numpy as np

MEAN_RGB = (0.485, 0.456, 0.406)
STD_RGB = (0.229, 0.224, 0.225)


def normalize_uint8_rgb(image: np.ndarray) -> np.ndarray:
    """H x W x 3 uint8 RGB -> 3 x H x W float32, scaled to [0, 1] and standardised."""
    x = image.astype(np.float32) / 255.0
    x = (x - np.asarray(MEAN_RGB, np.float32)) / np.asarray(STD_RGB, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))
