"""Procedural texture: periodic noise tiles sampled in surface coordinates, and cell hashes.

Textures are functions of a surface's own metres (not of screen position), so a wall keeps
its pattern while the camera drives past it. The tiles are made once from a fixed seed
(variety comes from each surface's own scale and offset), which keeps generation fast and
byte-identical between runs and processes.
"""
from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

TILE = 256  # texels per tile side before upsampling
UP = 4  # the stored tiles are bicubically upsampled, so nearest lookup looks smooth
_SIDE = TILE * UP
_MASK = _SIDE - 1
_SHIFT = _SIDE.bit_length() - 1
_POSITIVE = np.float32(4096.0)  # keeps lookup coordinates positive, where truncation is floor


def _periodic_noise(rng: np.random.Generator, exponent: float, low_cut: float) -> np.ndarray:
    """Tileable 1/f^exponent noise with zero mean and unit standard deviation."""
    white = rng.standard_normal((TILE, TILE))
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(TILE), np.fft.fftfreq(TILE), indexing="ij"))
    f[0, 0] = 1.0
    spectrum = np.fft.fft2(white) / f**exponent
    spectrum[f < low_cut] = 0.0
    tile = np.real(np.fft.ifft2(spectrum))
    tile = (tile - tile.mean()) / tile.std()
    wrapped = np.tile(tile.astype(np.float32), (3, 3))  # upsample with wrap-around neighbours
    big = cv2.resize(wrapped, (3 * _SIDE, 3 * _SIDE), interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(big[_SIDE : 2 * _SIDE, _SIDE : 2 * _SIDE]).ravel()


@lru_cache(maxsize=1)
def tiles() -> dict[str, np.ndarray]:
    """The shared noise tiles (flattened): 'fine' (grain, speckle) and 'blob' (stains, clouds)."""
    rng = np.random.default_rng(20180607)  # fixed: textures are part of the generator, not of a scene
    return {
        "fine": _periodic_noise(rng, 0.6, 0.0),
        "blob": _periodic_noise(rng, 1.6, 1.5 / TILE),
    }


def value(a: np.ndarray, b: np.ndarray, scale: float, kind: str = "fine", offset: float = 0.0) -> np.ndarray:
    """Noise (zero mean, unit deviation) at surface points with ``scale`` texels per metre.

    One gather per point from the upsampled tile: five times faster than bilinear filtering
    of the small tile, which dominated rendering time.
    """
    s = np.float32(scale * UP)
    ou = np.float32((offset % TILE) * UP) + _POSITIVE  # the tile repeats every TILE texels
    ov = np.float32((offset * 0.61803 % TILE) * UP) + _POSITIVE
    u = (a * s + ou).astype(np.int32)
    v = (b * s + ov).astype(np.int32)
    return tiles()[kind][((v & _MASK) << _SHIFT) | (u & _MASK)]


def noise(a: np.ndarray, b: np.ndarray, fp: np.ndarray, scale: float, kind: str = "fine", offset: float = 0.0) -> np.ndarray:
    """Noise as ``value`` but fading where one pixel (footprint ``fp`` metres) spans many texels.

    A cheap stand-in for mip-mapping that keeps distant surfaces from sparkling.
    """
    texels = fp * np.float32(scale)
    return value(a, b, scale, kind, offset) / (1.0 + texels * texels)


def cell_hash(i: np.ndarray, j: np.ndarray, salt: int) -> np.ndarray:
    """A repeatable pseudo-random value in [0, 1) per integer cell (i, j), e.g. per window."""
    h = i.astype(np.int64).astype(np.uint32) * np.uint32(73856093)
    h ^= j.astype(np.int64).astype(np.uint32) * np.uint32(19349663)
    h ^= np.uint32((salt * 83492791) & 0xFFFFFFFF)
    h ^= h >> np.uint32(13)
    h *= np.uint32(1274126177)
    h ^= h >> np.uint32(16)
    return (h & np.uint32(0xFFFF)).astype(np.float32) / np.float32(65536.0)
