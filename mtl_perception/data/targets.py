"""Training targets at any network resolution, from full-resolution Cityscapes arrays.

Pure numpy, no file access, so that every rule can be checked against hand-computed values.

Geometry convention (used everywhere here): pixel (u, v) has its centre at coordinate (u, v).
When an image of width W0 is resampled to width Ws (scale ``sx = W0 / Ws``), the centre of
output pixel u lies at source coordinate ``(u + 0.5) * sx - 0.5``; the same holds for rows.
This is OpenCV's convention for ``INTER_AREA``/``INTER_LINEAR``, so the image and the targets
line up. Nearest sampling takes the source pixel containing that point,
``floor((u + 0.5) * sx)`` (a point on a pixel border goes to the right/lower pixel: at an
exact 8:1 ratio that is 1/16 of an output pixel from the image's centre, below anything a
network resolves), and *every* per-pixel target (labelId, instance id, disparity)
is read from that same source pixel: targets never mix neighbours (no averaged label ids, no
invalid disparity leaking into valid pixels, no car pixel carrying road disparity) and stay
consistent with each other.

A ``View`` describes the output window: the whole source is (virtually) resampled to a
``scaled`` size, an ``out_size`` window is cut at ``offset`` (negative offsets or a window
larger than the scaled image pad: label 0 = unlabeled, instance id 0, disparity invalid), then
optionally mirrored left-right. Evaluation uses ``View(scaled=out_size)``; augmentation draws
random ones (see ``augment.py``).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from mtl_perception.data.labels import (
    INSTANCE_ID_DIVISOR,
    IS_THING_TRAIN_ID,
    LABEL_ID_TO_TRAIN_ID,
    SKY_LABEL_ID,
)
from mtl_perception.data.normalize import MEAN_RGB

#: Padding colour: the normalisation mean, so padded pixels normalise to (about) zero.
MEAN_RGB_UINT8 = tuple(int(round(m * 255)) for m in MEAN_RGB)

#: Instance ids are 16-bit in gtFine: histograms and lookup tables over this range replace
#: per-instance loops.
_ID_RANGE = 1 << 16
_ALL_IDS = np.arange(_ID_RANGE)
_IS_THING_INSTANCE_ID = (_ALL_IDS >= INSTANCE_ID_DIVISOR) & IS_THING_TRAIN_ID[
    LABEL_ID_TO_TRAIN_ID[np.minimum(_ALL_IDS // INSTANCE_ID_DIVISOR, 255)]
]


@dataclass(frozen=True)
class Centroids:
    """Centroid of every gtFine instance id >= 1000, in full-resolution pixel coordinates.

    Computed once on the full-resolution instance map so that an instance split by an
    occluder keeps one centroid, and so that resizing or cropping never moves it.
    """

    ids: np.ndarray  # int64 (N,), sorted
    cx: np.ndarray  # float64 (N,), mean column of the instance's pixels
    cy: np.ndarray  # float64 (N,), mean row


@dataclass(frozen=True)
class Source:
    """One decoded sample: full-resolution arrays, or a cached downsample of them.

    ``original_size`` is the size of the dataset's PNGs; disparity values, ``fx`` and the
    centroids refer to it even when the arrays here are smaller (a cache).
    """

    image: np.ndarray  # uint8 (h, w, 3) RGB
    label_ids: np.ndarray  # uint8 (h, w) Cityscapes labelIds
    instance_ids: np.ndarray  # uint16 (h, w) gtFine instance ids
    disparity_raw: np.ndarray  # uint16 (h, w) raw PNG values p
    centroids: Centroids
    original_size: tuple[int, int]  # (H0, W0)
    fx: float  # pixels, at width W0
    baseline: float  # metres


@dataclass(frozen=True)
class View:
    """The output window: resample the source to ``scaled`` (H, W), cut at ``offset`` (y, x), mirror if ``flip``."""

    scaled: tuple[int, int]
    offset: tuple[int, int] = (0, 0)
    flip: bool = False


def train_ids(label_ids: np.ndarray) -> np.ndarray:
    """Cityscapes labelIds -> train ids (0..18, 255 = ignore)."""
    return LABEL_ID_TO_TRAIN_ID[label_ids]


def instance_centroids(instance_ids: np.ndarray) -> Centroids:
    """Mean pixel coordinates of each id >= 1000 (one ``np.bincount`` pass, no per-instance loop)."""
    flat = instance_ids.ravel()
    pixels = np.flatnonzero(flat >= INSTANCE_ID_DIVISOR)
    ids = flat[pixels]
    width = instance_ids.shape[1]
    counts = np.bincount(ids, minlength=_ID_RANGE)
    sum_x = np.bincount(ids, weights=pixels % width, minlength=_ID_RANGE)
    sum_y = np.bincount(ids, weights=pixels // width, minlength=_ID_RANGE)
    present = np.flatnonzero(counts)
    return Centroids(ids=present, cx=sum_x[present] / counts[present], cy=sum_y[present] / counts[present])


def nearest_indices(src_len: int, scaled_len: int, offset: int, out_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Source index of each output position along one axis, and whether it lies inside the image.

    Output position i sits at ``offset + i`` in the scaled image, whose centre maps to source
    coordinate ``(offset + i + 0.5) * src_len / scaled_len - 0.5``; the containing source pixel
    is ``floor((2 * p + 1) * src_len / (2 * scaled_len))``, computed in integers so that exact
    ratios (2048 -> 256) never suffer float rounding.
    """
    position = offset + np.arange(out_len, dtype=np.int64)
    inside = (position >= 0) & (position < scaled_len)
    index = ((2 * position + 1) * src_len) // (2 * scaled_len)
    return np.clip(index, 0, src_len - 1), inside


def resample_nearest(array: np.ndarray, view: View, out_size: tuple[int, int], fill: int) -> np.ndarray:
    """Nearest resampling of a label-like array into the view; ``fill`` outside the image."""
    rows, rows_in = nearest_indices(array.shape[0], view.scaled[0], view.offset[0], out_size[0])
    cols, cols_in = nearest_indices(array.shape[1], view.scaled[1], view.offset[1], out_size[1])
    if view.flip:  # mirrored gather: no second copy
        cols, cols_in = cols[::-1], cols_in[::-1]
    out = array[rows[:, None], cols[None, :]]
    if not rows_in.all():
        out[~rows_in, :] = fill
    if not cols_in.all():
        out[:, ~cols_in] = fill
    return out


def resample_image(image: np.ndarray, view: View, out_size: tuple[int, int], fill: tuple[int, int, int]) -> np.ndarray:
    """Area-average (shrinking) or bilinear (enlarging) resampling of an RGB image into the view."""
    h, w = image.shape[:2]
    hs, ws = view.scaled
    if (hs, ws) != (h, w):
        interpolation = cv2.INTER_AREA if hs <= h and ws <= w else cv2.INTER_LINEAR
        image = cv2.resize(image, (ws, hs), interpolation=interpolation)
    oy, ox = view.offset
    y0, x0 = max(oy, 0), max(ox, 0)
    y1, x1 = min(oy + out_size[0], hs), min(ox + out_size[1], ws)
    if (y1 - y0, x1 - x0) == out_size:  # the window lies inside the image: no padding
        out = image[y0:y1, x0:x1]
    else:
        out = np.empty((*out_size, 3), dtype=np.uint8)
        out[...] = np.asarray(fill, dtype=np.uint8)
        if y1 > y0 and x1 > x0:
            out[y0 - oy : y1 - oy, x0 - ox : x1 - ox] = image[y0:y1, x0:x1]
    return cv2.flip(out, 1) if view.flip else np.ascontiguousarray(out)


def disparity_target(
    disparity_raw: np.ndarray, label_ids: np.ndarray, width_ratio: float
) -> tuple[np.ndarray, np.ndarray]:
    """Raw disparity PNG values -> (disparity in pixels at the output width, validity).

    ``d = (p - 1) / 256 * width_ratio`` for p > 0 (``width_ratio`` = output scaled width /
    original width); p = 0 is invalid. Pixels labelled sky are valid with d = 0 whatever their
    PNG value (paper: sky is at infinity), applied with the output's own labels so the depth
    and semantic targets agree on which pixels are sky.
    """
    valid = disparity_raw > 0
    disparity = np.where(valid, (disparity_raw.astype(np.float32) - 1.0) * np.float32(width_ratio / 256.0), 0.0)
    sky = label_ids == SKY_LABEL_ID
    disparity[sky] = 0.0
    return disparity.astype(np.float32, copy=False), valid | sky


def instance_mask(instance_ids: np.ndarray) -> np.ndarray:
    """Pixels of thing instances: id >= 1000 whose class (id // 1000) has a thing train id.

    ``instance_ids`` are gtFine's 16-bit ids (any unsigned or int array with values < 65536).

    Stuff and crowd regions (ids < 1000) and instance classes without a train id (caravan,
    trailer) carry no instance target.
    """
    return _IS_THING_INSTANCE_ID[instance_ids]


def instance_vectors(
    instance_ids: np.ndarray,
    centroids: Centroids,
    view: View,
    original_size: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """(2, H, W) float32 vectors (dx, dy) = centroid - pixel at the output resolution, and their mask.

    A full-resolution centroid c maps to the scaled image at ``(c + 0.5) * Ws / W0 - 0.5``,
    then to the window by subtracting the offset, then to ``W - 1 - x`` when mirrored; the
    vector is recomputed from that mirrored centroid (not only negated). Vectors of pixels
    outside the mask are 0.
    """
    out_h, out_w = instance_ids.shape
    (h0, w0), (hs, ws), (oy, ox) = original_size, view.scaled, view.offset
    mask = instance_mask(instance_ids)
    vectors = np.zeros((2, out_h, out_w), dtype=np.float32)
    v, u = np.nonzero(mask)
    if len(v):
        row = np.searchsorted(centroids.ids, instance_ids[v, u])
        cx = (centroids.cx[row] + 0.5) * (ws / w0) - 0.5 - ox
        cy = (centroids.cy[row] + 0.5) * (hs / h0) - 0.5 - oy
        if view.flip:
            cx = (out_w - 1) - cx
        vectors[0, v, u] = cx - u
        vectors[1, v, u] = cy - v
    return vectors, mask


def render(source: Source, view: View, out_size: tuple[int, int]) -> dict[str, np.ndarray | float]:
    """All targets of one sample in one view: image (uint8 RGB), semantic, instance, disparity, camera.

    ``fx`` and disparity scale with the scaled width (a zoomed image behaves as a longer focal
    length with the same metric depth); the baseline is a length and does not change.
    """
    label_ids = resample_nearest(source.label_ids, view, out_size, fill=0)
    instance_ids = resample_nearest(source.instance_ids, view, out_size, fill=0)
    disparity_raw = resample_nearest(source.disparity_raw, view, out_size, fill=0)
    width_ratio = view.scaled[1] / source.original_size[1]
    disparity, disparity_mask = disparity_target(disparity_raw, label_ids, width_ratio)
    vectors, mask = instance_vectors(instance_ids, source.centroids, view, source.original_size)
    return {
        "image": resample_image(source.image, view, out_size, fill=MEAN_RGB_UINT8),
        "semantic": train_ids(label_ids),
        "instance": vectors,
        "instance_mask": mask,
        "instance_ids": instance_ids,
        "disparity": disparity,
        "disparity_mask": disparity_mask,
        "fx": source.fx * width_ratio,
        "baseline": source.baseline,
    }


def downsample(source: Source, size: tuple[int, int]) -> Source:
    """A smaller copy of a source (for the cache) whose targets render as the original's would.

    Arrays are resampled on the same grid as ``render`` uses; centroids, raw disparity values,
    ``fx`` and ``original_size`` stay those of the full-resolution files.
    """
    view = View(scaled=size)
    return Source(
        image=resample_image(source.image, view, size, fill=MEAN_RGB_UINT8),
        label_ids=resample_nearest(source.label_ids, view, size, fill=0),
        instance_ids=resample_nearest(source.instance_ids, view, size, fill=0),
        disparity_raw=resample_nearest(source.disparity_raw, view, size, fill=0),
        centroids=source.centroids,
        original_size=source.original_size,
        fx=source.fx,
        baseline=source.baseline,
    )
