"""Cityscapes-layout datasets to rosbag2 recordings that replay like a camera.

Every frame i gets the header stamp ``start_time + i / rate`` (the same on all its topics, so
consumers can match them exactly) and is written with that time as its receive time, so
``ros2 bag play`` publishes at ``rate``. Topics (defaults; ``IMAGE_TOPIC``'s namespace holds
the camera topics, ``GT_PREFIX`` the ground truth):

| topic | type | content |
|---|---|---|
| ``/camera/image`` | sensor_msgs/Image rgb8 | the left image |
| ``/camera/camera_info`` | sensor_msgs/CameraInfo | K from the camera JSON, D = 0 (plumb_bob), R = I, P = [K 0] (left camera: Tx = 0) |
| ``/camera/right/camera_info`` | sensor_msgs/CameraInfo | the stereo partner: P[3] = Tx = -fx * baseline (ROS stereo convention); the **baseline** is -P[3] / P[0] |
| ``/gt/semantic`` | sensor_msgs/Image mono8 | train ids 0..18, 255 = ignore |
| ``/gt/instance`` | sensor_msgs/Image mono16 | raw gtFine ids: labelId * 1000 + k for things, labelId below 1000 (ids fit 16 bits, as in gtFine's PNGs) |
| ``/gt/disparity`` | sensor_msgs/Image 32FC1 | disparity in pixels at the image's width; 0 = sky (infinitely far), NaN = no ground truth |

frame_id is ``camera_optical_frame`` (``camera_right_optical_frame`` for the right camera).
With ``--height/--width`` the image is area-resampled and the labels take the nearest source
pixel (``data.targets.render``, the grid training uses); intrinsics follow the pixel-centre
convention ``u' = (u + 0.5) * s - 0.5`` and disparity scales with the width.

``sequence=True`` reads the video snippets (``leftImg8bit_sequence``) instead: ground truth is
written for the frames that have it (the annotated frame of each snippet), camera info from the
snippet's camera file.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer
from tqdm import tqdm

from mtl_perception.bag import messages
from mtl_perception.bag.topics import DEFAULT_RATE_HZ, DEFAULT_START_TIME_S, GT_ENCODINGS, Topics
from mtl_perception.data import pngio
from mtl_perception.data.cityscapes import SampleFiles, discover, read_source
from mtl_perception.data.targets import View, render, resample_image
from mtl_perception.errors import DatasetError, UserError

STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
ROSBAG2_VERSION = 9  # Jazzy and later read it; rosbags writes 8 or 9


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics (pixels) and the stereo baseline (metres) of one image."""

    fx: float
    fy: float
    cx: float
    cy: float
    baseline: float

    def scaled(self, sx: float, sy: float) -> "Intrinsics":
        """The intrinsics after resampling by (sx, sy), pixel centres at integer coordinates."""
        return Intrinsics(
            self.fx * sx, self.fy * sy, (self.cx + 0.5) * sx - 0.5, (self.cy + 0.5) * sy - 0.5, self.baseline
        )


@dataclass(frozen=True)
class _Item:
    """One image to write: its file, its ground-truth files (or None) and its camera JSON."""

    stem: str
    image: Path
    camera: Path
    labels: SampleFiles | None


def read_intrinsics(path: Path) -> Intrinsics:
    """fx, fy, u0, v0 and the baseline of a Cityscapes ``*_camera.json`` (validated by ``pngio``)."""
    fx, baseline = pngio.read_camera(path)
    intrinsic = json.loads(path.read_text(encoding="utf-8"))["intrinsic"]
    try:
        fy, u0, v0 = (float(intrinsic[key]) for key in ("fy", "u0", "v0"))
    except (KeyError, TypeError, ValueError):
        raise DatasetError(f"{path}: missing or non-numeric 'intrinsic.fy', 'intrinsic.u0' or 'intrinsic.v0'") from None
    if not all(np.isfinite((fy, u0, v0))) or fy <= 0:
        raise DatasetError(f"{path}: intrinsic fy/u0/v0 must be finite with fy > 0, got {fy}, {u0}, {v0}")
    return Intrinsics(fx, fy, u0, v0, baseline)


def _annotated_items(root: Path, split: str) -> list[_Item]:
    return [_Item(s.stem, s.image, s.camera, s) for s in discover(root, split)]


def _sequence_items(root: Path, split: str) -> list[_Item]:
    """Frames of ``leftImg8bit_sequence`` in (city, snippet, frame) order, with ground truth where it exists."""
    folder = root / "leftImg8bit_sequence" / split
    if not folder.is_dir():
        raise DatasetError(f"sequence folder not found: {folder} (expected leftImg8bit_sequence/{split}/CITY/...)")
    try:
        labelled = {s.stem: s for s in discover(root, split)}
    except DatasetError:
        labelled = {}  # a sequence-only download: images without ground truth
    suffix = "_leftImg8bit.png"
    items = []
    for image in sorted(folder.glob(f"*/*{suffix}")):
        stem = image.name[: -len(suffix)]
        items.append(_Item(stem, image, _sequence_camera(root, split, image.parent.name, stem), labelled.get(stem)))
    if not items:
        raise DatasetError(f"no *{suffix} images in {folder}")
    return items


def _sequence_camera(root: Path, split: str, city: str, stem: str) -> Path:
    """The frame's own camera JSON, else the one of its snippet (``CITY_SEQ_*``)."""
    folder = root / "camera" / split / city
    own = folder / f"{stem}_camera.json"
    if own.is_file():
        return own
    snippet = re.sub(r"_\d+$", "", stem)
    found = sorted(folder.glob(f"{snippet}_*_camera.json"))
    if not found:
        raise DatasetError(f"no camera file for {stem}: neither {own} nor {folder / (snippet + '_*_camera.json')}")
    return found[0]


def _frames(item: _Item, size: tuple[int, int] | None) -> tuple[dict[str, np.ndarray], Intrinsics]:
    """The arrays to write for one item (image and, when labelled, ground truth) and its intrinsics."""
    intrinsics = read_intrinsics(item.camera)
    if item.labels is not None:
        source = read_source(item.labels)
        original = source.original_size
        out_size = size or original
        arrays = render(source, View(scaled=out_size), out_size)
        disparity = np.where(arrays["disparity_mask"], arrays["disparity"], np.float32(np.nan)).astype(np.float32)
        data = {
            "image": arrays["image"],
            "semantic": arrays["semantic"],
            "instance": arrays["instance_ids"].astype(np.uint16),
            "disparity": disparity,
        }
    else:
        image = pngio.read_rgb(item.image)
        original = image.shape[:2]
        out_size = size or original
        data = {"image": resample_image(image, View(scaled=out_size), out_size, fill=(0, 0, 0))}
    return data, intrinsics.scaled(out_size[1] / original[1], out_size[0] / original[0])


def _items(root: Path, split: str, sequence: bool, limit: int | None) -> list[_Item]:
    items = _sequence_items(root, split) if sequence else _annotated_items(root, split)
    return items[:limit] if limit is not None else items


def make_bag(
    root: str | os.PathLike,
    out: str | os.PathLike,
    split: str = "val",
    sequence: bool = False,
    rate: float = DEFAULT_RATE_HZ,
    storage: str = "mcap",
    size: tuple[int, int] | None = None,
    topics: Topics = Topics(),
    start_time: float = DEFAULT_START_TIME_S,
    limit: int | None = None,
    progress: bool = False,
) -> dict[str, int]:
    """Write the split as a bag at ``out``; return the message count per topic.

    The bag is assembled in a temporary folder beside ``out`` and moved into place at the
    end, so an interrupted run never leaves something that looks like a finished bag.
    """
    out = Path(out)
    if out.exists():
        raise UserError(f"--out {out} exists; rosbag2 bags are never overwritten, choose another path")
    if not rate > 0:
        raise UserError(f"--rate must be positive, got {rate}")
    if storage not in STORAGES:
        raise UserError(f"--storage must be one of {sorted(STORAGES)}, got {storage!r}")
    if limit is not None and limit < 1:
        raise UserError(f"--limit must be at least 1, got {limit}")
    items = _items(Path(root), split, sequence, limit)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        counts = _write(staging / out.name, items, rate, STORAGES[storage], size, topics, start_time, progress)
        os.replace(staging / out.name, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return counts


def _write(
    path: Path,
    items: list[_Item],
    rate: float,
    storage: StoragePlugin,
    size: tuple[int, int] | None,
    topics: Topics,
    start_time: float,
    progress: bool,
) -> dict[str, int]:
    counts: dict[str, int] = {}
    t0 = round(start_time * 1e9)
    with Writer(path, version=ROSBAG2_VERSION, storage_plugin=storage) as writer:
        writer.set_custom_data("mtl_perception.source", "mtl-perception bag make")
        connections: dict[str, object] = {}

        def write(topic: str, msgtype: str, msg: object, log_time: int) -> None:
            if topic not in connections:
                connections[topic] = writer.add_connection(topic, msgtype, typestore=messages.TYPESTORE)
            writer.write(connections[topic], log_time, messages.TYPESTORE.serialize_cdr(msg, msgtype))
            counts[topic] = counts.get(topic, 0) + 1

        for i, item in enumerate(tqdm(items, desc="bag make", unit="frame", disable=not progress)):
            stamp = t0 + round(i * 1e9 / rate)
            data, cam = _frames(item, size)
            header = messages.make_header(stamp, topics.frame_id)
            shape = data["image"].shape[:2]
            write(topics.image, messages.IMAGE, messages.image_message(data["image"], "rgb8", header), stamp)
            info = messages.camera_info_message(header, shape, cam.fx, cam.fy, cam.cx, cam.cy)
            write(topics.camera_info, messages.CAMERA_INFO, info, stamp)
            right = messages.camera_info_message(
                messages.make_header(stamp, topics.right_frame_id),
                shape, cam.fx, cam.fy, cam.cx, cam.cy, tx=-cam.fx * cam.baseline,
            )
            write(topics.right_camera_info, messages.CAMERA_INFO, right, stamp)
            for key, encoding in GT_ENCODINGS.items():
                if key in data:
                    write(topics.gt(key), messages.IMAGE, messages.image_message(data[key], encoding, header), stamp)
    return counts
