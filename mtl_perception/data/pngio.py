"""PNG and camera-JSON reading with the checks that turn bad files into clear errors.

Decoding uses OpenCV: it is several times faster than Pillow for the large Cityscapes PNGs and
``IMREAD_UNCHANGED`` keeps 16-bit data as ``uint16``. Every failure raises ``DatasetError``
naming the file and saying what was expected, because a training run that dies on sample
12 345 with a shape error inside a collate function is the alternative.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from cityscapesscripts.helpers.labels import labels as _CS_LABELS

from mtl_perception.data.labels import INSTANCE_ID_DIVISOR, INSTANCE_LABEL_IDS
from mtl_perception.errors import DatasetError

#: labelIds defined by cityscapesscripts (0..33; the licence plate's -1 never appears in PNGs).
KNOWN_LABEL_ID = np.zeros(256, dtype=bool)
KNOWN_LABEL_ID[[l.id for l in _CS_LABELS if 0 <= l.id < 256]] = True

#: Which ``id // 1000`` values may prefix a gtFine instance id (classes with ``hasInstances``).
_INSTANCE_PREFIX_OK = np.zeros(65536 // INSTANCE_ID_DIVISOR + 1, dtype=bool)
_INSTANCE_PREFIX_OK[list(INSTANCE_LABEL_IDS)] = True


def _decode(path: Path) -> np.ndarray:
    """Decode a PNG unchanged (bit depth and channels kept), or raise naming the file."""
    if not path.is_file():
        raise DatasetError(f"missing file: {path}")
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise DatasetError(f"cannot decode PNG (corrupt or not a PNG): {path}")
    return image


def _describe(image: np.ndarray) -> str:
    channels = 1 if image.ndim == 2 else image.shape[2]
    return f"{image.dtype.itemsize * 8}-bit, {channels} channel(s)"


def read_rgb(path: Path) -> np.ndarray:
    """8-bit colour PNG -> H x W x 3 uint8 RGB (an alpha channel is dropped)."""
    image = _decode(path)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (3, 4):
        raise DatasetError(f"{path}: expected an 8-bit RGB PNG, got {_describe(image)}")
    return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB if image.shape[2] == 4 else cv2.COLOR_BGR2RGB)


def read_label_ids(path: Path) -> np.ndarray:
    """gtFine ``*_labelIds.png`` -> H x W uint8, checked against the cityscapesscripts table."""
    image = _decode(path)
    if image.dtype != np.uint8 or image.ndim != 2:
        raise DatasetError(f"{path}: labelIds must be an 8-bit single-channel PNG, got {_describe(image)}")
    if not KNOWN_LABEL_ID[: int(image.max()) + 1].all():  # fast path: ids 0..max all known
        unknown = ~KNOWN_LABEL_ID[image]
        if unknown.any():
            values = np.unique(image[unknown])[:5].tolist()
            raise DatasetError(f"{path}: labelIds {values} are not Cityscapes label ids (0..33)")
    return image


def read_instance_ids(path: Path) -> np.ndarray:
    """gtFine ``*_instanceIds.png`` -> H x W uint16 ids.

    Values below 1000 are plain labelIds (stuff or crowd); larger values are
    ``labelId * 1000 + k`` and their prefix must be a class with instances. The check runs on
    the id histogram (one pass over the pixels) rather than on every pixel.
    """
    image = _decode(path)
    if image.dtype != np.uint16 or image.ndim != 2:
        raise DatasetError(f"{path}: instanceIds must be a 16-bit single-channel PNG, got {_describe(image)}")
    present = np.flatnonzero(np.bincount(image.ravel(), minlength=1 << 16))
    small = present < INSTANCE_ID_DIVISOR
    ok = np.where(small, KNOWN_LABEL_ID[np.minimum(present, 255)], _INSTANCE_PREFIX_OK[present // INSTANCE_ID_DIVISOR])
    if not ok.all():
        raise DatasetError(
            f"{path}: instance ids {present[~ok][:5].tolist()} are neither a Cityscapes labelId "
            "nor labelId*1000+k of a class with instances"
        )
    return image


def read_disparity(path: Path) -> np.ndarray:
    """Cityscapes ``*_disparity.png`` -> H x W uint16 raw values p (d = (p - 1) / 256, p = 0 invalid)."""
    image = _decode(path)
    if image.dtype != np.uint16 or image.ndim != 2:
        raise DatasetError(f"{path}: disparity must be a 16-bit single-channel PNG, got {_describe(image)}")
    return image


def read_camera(path: Path) -> tuple[float, float]:
    """Cityscapes ``*_camera.json`` -> (fx in pixels at the original width, baseline in metres)."""
    if not path.is_file():
        raise DatasetError(f"missing file: {path}")
    try:
        camera = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: not a readable JSON file ({exc})") from None
    values = {}
    for section, key in (("intrinsic", "fx"), ("extrinsic", "baseline")):
        try:
            value = float(camera[section][key])
        except (KeyError, TypeError, ValueError):
            raise DatasetError(f"{path}: missing or non-numeric '{section}.{key}'") from None
        if not np.isfinite(value) or value <= 0:
            raise DatasetError(f"{path}: '{section}.{key}' must be positive, got {value}")
        values[key] = value
    return values["fx"], values["baseline"]
