"""Side-by-side mosaics (input | semantic | instances | depth) for people to look at.

Used by the synthetic-data preview, the demo and the bag reports, so that every picture the
project shows a person is laid out the same way.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from mtl_perception.io_utils import atomic_write


def tile(rows: Sequence[Sequence[np.ndarray]], gap: int = 2) -> np.ndarray:
    """Tile rows of H x W x 3 uint8 images (all the same size) with a white gap between them."""
    if not rows or not rows[0]:
        raise ValueError("tile() needs at least one image")
    h, w = rows[0][0].shape[:2]
    cols = max(len(r) for r in rows)
    canvas = np.full((len(rows) * (h + gap) - gap, cols * (w + gap) - gap, 3), 255, np.uint8)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            if img.shape[:2] != (h, w):
                img = cv2.resize(img, (w, h), interpolation=cv2.INTER_NEAREST)
            canvas[i * (h + gap) : i * (h + gap) + h, j * (w + gap) : j * (w + gap) + w] = img
    return canvas


def write_png(path: str | Path, rgb: np.ndarray) -> None:
    """Write an RGB uint8 image as PNG atomically."""
    path = Path(path)

    def _write(tmp: str) -> None:
        ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        if not ok:
            raise OSError(f"could not encode {path}")
        Path(tmp).write_bytes(buf.tobytes())

    atomic_write(path, _write)
