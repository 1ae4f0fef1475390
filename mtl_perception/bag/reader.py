"""Typed iteration over the camera frames of a rosbag2 recording, robust to damaged bags.

A recording from a vehicle is not always a clean ``ros2 bag record`` result: the recorder may
have been killed (an MCAP file without its summary and footer, no ``metadata.yaml``), a
driver may publish encodings we do not take, a message may be corrupt. ``BagInput`` reads
what can be read and keeps a list of what could not (``notes``, ``skipped``) for the report
instead of failing the whole evaluation:

- a directory with ``metadata.yaml``: read through ``rosbags``;
- a directory without it, or a bare ``.mcap`` / ``.db3`` file: its storage files are read
  directly, in the recorder's split order (``NAME_0``, ``NAME_1``, ...);
- an MCAP file that ends early: its complete records are copied into a temporary file that
  gets a valid footer (what ``mcap recover`` does), so messages in complete chunks are read;
  the chunk being written when the recorder stopped is lost;
- an error in the middle of the message stream ends the reading there, with a note.

Frames are matched to their ground truth (``GT_PREFIX/semantic``, ``/instance``,
``/disparity``, written by ``mtl-perception bag make``) and to ``camera_info`` by header
stamp, so bags where the topics were recorded in any interleaving work.
"""
from __future__ import annotations

import re
import struct
import tempfile
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from rosbags.rosbag2 import Reader
from ruamel.yaml import YAML

from mtl_perception.bag import messages
from mtl_perception.bag import topics as layout
from mtl_perception.errors import UserError

_MCAP_MAGIC = b"\x89MCAP0\r\n"
# DataEnd record (crc 0 = not checked), then a Footer without summary (rosbags then scans the data).
_MCAP_TAIL = b"\x0f" + struct.pack("<QI", 4, 0) + b"\x02" + struct.pack("<QQQI", 20, 0, 0, 0) + _MCAP_MAGIC
_STORAGE_SUFFIXES = (".mcap", ".db3")
# How long (bag time) a frame waits for ground truth that never comes before it is emitted alone.
_MATCH_WINDOW_NS = 2_000_000_000


@dataclass
class BagFrame:
    """One camera image of the bag with what belongs to it."""

    index: int  # position among the bag's readable images
    log_time: int  # ns, when the recorder received it (replay timing)
    stamp: int  # ns, header stamp (copied into every output)
    header: Any  # the image's std_msgs/Header
    encoding: str
    rgb: np.ndarray  # H x W x 3 uint8
    raw: bytes  # the CDR-serialised image message, republished unchanged in live replay
    ground_truth: dict[str, np.ndarray] = field(default_factory=dict)  # keys of topics.GT_ENCODINGS present
    camera_info: Any | None = None  # sensor_msgs/CameraInfo with this stamp, else the latest one
    baseline: float | None = None  # metres, from the right camera's CameraInfo (P[3] = -fx * B) when recorded

    def camera(self) -> Any | None:
        """The Pipeline's camera model for this frame: its CameraInfo intrinsics and recorded baseline.

        None when the bag has no usable camera info (the Pipeline then uses the model's training
        camera). A CameraInfo for another resolution (binning, a resized stream) is scaled.
        """
        from mtl_perception.inference.camera import CameraModel

        info = self.camera_info
        if info is None or not (info.k[0] > 0 and info.k[4] > 0 and info.width > 0 and info.height > 0):
            return None
        height, width = self.rgb.shape[:2]
        camera = CameraModel(
            fx=float(info.k[0]), fy=float(info.k[4]), cx=float(info.k[2]), cy=float(info.k[5]),
            width=int(info.width), height=int(info.height), baseline=self.baseline,
        )
        return camera.scaled(width, height)

    def focal_baseline(self, default_baseline: float | None) -> float | None:
        """fx * B (pixels x metres, fx at the image's width) of the ground truth's depth Z* = fx B / d*:
        the recorded camera, with ``default_baseline`` (the model's training rig) when the bag has no
        stereo partner; None without a usable camera_info (no metric-depth scores then)."""
        camera = self.camera()
        baseline = self.baseline or default_baseline
        return camera.fx * baseline if camera is not None and baseline else None


@dataclass
class ReadStats:
    """What the reading could not use, for the report."""

    notes: list[str] = field(default_factory=list)
    skipped_encodings: Counter = field(default_factory=Counter)  # encoding -> images skipped
    undecodable: int = 0  # messages that failed to deserialise or decode
    images_expected: int | None = None  # from metadata.yaml, when present and readable
    images_read: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "notes": list(self.notes),
            "skipped_encodings": dict(self.skipped_encodings),
            "undecodable": self.undecodable,
            "images_expected": self.images_expected,
            "images_read": self.images_read,
        }


def _split_index(path: Path) -> tuple[int, str]:
    match = re.search(r"_(\d+)$", path.stem)
    return (int(match.group(1)) if match else 0, path.name)


def _storage_files(folder: Path) -> list[Path]:
    files = [p for p in folder.iterdir() if p.suffix in _STORAGE_SUFFIXES and p.is_file()]
    return sorted(files, key=_split_index)


def _repair_mcap(path: Path, out_dir: Path) -> tuple[Path, str]:
    """Copy the complete records of a truncated MCAP file and close it with a footer."""
    with path.open("rb") as f:
        size = f.seek(0, 2)
        f.seek(0)
        if f.read(8) != _MCAP_MAGIC:
            raise UserError(f"{path}: not an MCAP file (bad magic bytes)")
        end = 8
        while end + 9 <= size:
            f.seek(end)
            op, length = struct.unpack("<BQ", f.read(9))
            if op == 0x0F or end + 9 + length > size:  # DataEnd (summary follows) or cut-off record
                break
            end += 9 + length
    repaired = out_dir / path.name
    with path.open("rb") as src, repaired.open("wb") as dst:
        remaining = end
        while remaining:
            block = src.read(min(remaining, 1 << 24))
            dst.write(block)
            remaining -= len(block)
        dst.write(_MCAP_TAIL)
    return repaired, f"{path.name} ends without its index (truncated at byte {size}); read its first {end} bytes"


def _expected_counts(folder: Path) -> dict[str, int]:
    """Message counts per topic from ``metadata.yaml`` (empty when absent or unreadable)."""
    try:
        info = YAML(typ="safe").load((folder / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
        return {t["topic_metadata"]["name"]: int(t["message_count"]) for t in info["topics_with_message_count"]}
    except Exception:  # absent or damaged metadata only means "no expectation"
        return {}


class BagInput:
    """An open rosbag2 recording: its topics and its frames. Use as a context manager."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise UserError(f"bag not found: {self.path}")
        self.stats = ReadStats()
        self._tmp = tempfile.TemporaryDirectory(prefix="mtl_bag_")
        self._readers: list[Reader] = []
        try:
            self._open()
        except BaseException:
            self.close()
            raise
        self.topics: dict[str, str] = {}
        for reader in self._readers:
            for conn in reader.connections:
                self.topics.setdefault(conn.topic, conn.msgtype)
        folder = self.path if self.path.is_dir() else self.path.parent
        self._expected = _expected_counts(folder)

    def _open(self) -> None:
        if self.path.is_dir() and (self.path / "metadata.yaml").is_file():
            try:
                self._readers = [self._open_reader(self.path)]
                return
            except UserError as exc:
                self.stats.notes.append(f"could not open the bag through metadata.yaml ({exc}); reading its storage files directly")
        elif self.path.is_dir():
            self.stats.notes.append("no metadata.yaml; reading the storage files directly")
        files = _storage_files(self.path) if self.path.is_dir() else [self.path]
        if not files:
            raise UserError(f"{self.path}: no rosbag2 storage file (*.mcap or *.db3) found")
        for file in files:
            if file.suffix not in _STORAGE_SUFFIXES:
                raise UserError(f"{file}: not a rosbag2 bag (expected a bag folder, a .mcap or a .db3 file)")
            try:
                self._readers.append(self._open_reader(file))
            except UserError as exc:
                if file.suffix != ".mcap":
                    raise UserError(
                        f"{exc} (a partly written sqlite3 file may be rescued with `sqlite3 {file} .recover`)"
                    ) from None
                repaired, note = _repair_mcap(file, Path(self._tmp.name))
                self.stats.notes.append(note)
                self._readers.append(self._open_reader(repaired, shown=file))

    @staticmethod
    def _open_reader(path: Path, shown: Path | None = None) -> Reader:
        reader = Reader(path)
        try:
            reader.open()
        except Exception as exc:  # rosbags raises ReaderError, KeyError, apsw errors ... for a bad bag
            raise UserError(f"cannot read bag {shown or path}: {exc}") from None
        return reader

    def close(self) -> None:
        for reader in self._readers:
            if reader.is_open:
                reader.close()
        self._readers = []
        self._tmp.cleanup()

    def __enter__(self) -> "BagInput":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def require_image_topic(self, topic: str) -> None:
        """Raise ``UserError`` listing the bag's image topics when ``topic`` is not one of them."""
        if self.topics.get(topic) == messages.IMAGE:
            return
        listing = ", ".join(f"{name} ({kind})" for name, kind in sorted(self.topics.items())) or "none"
        damage = f" ({'; '.join(self.stats.notes)})" if self.stats.notes else ""
        if topic in self.topics:
            raise UserError(f"topic {topic} in {self.path} is {self.topics[topic]}, not {messages.IMAGE}; topics: {listing}")
        raise UserError(f"topic {topic} not in {self.path}; topics: {listing}{damage}")

    def ground_truth_topics(self, prefix: str) -> dict[str, str]:
        """The ground-truth topics present: key of ``topics.GT_ENCODINGS`` -> topic name."""
        topics = {key: layout.gt_topic(prefix, key) for key in layout.GT_ENCODINGS}
        return {key: topic for key, topic in topics.items() if self.topics.get(topic) == messages.IMAGE}

    def _messages(self, topics: set[str]) -> Iterator[tuple[str, int, bytes]]:
        """(topic, log time, raw CDR) in recording order; a storage error ends the stream with a note."""
        for reader in self._readers:
            conns = [c for c in reader.connections if c.topic in topics]
            if not conns:
                continue
            stream = reader.messages(connections=conns)
            while True:
                try:
                    conn, log_time, raw = next(stream)
                except StopIteration:
                    break
                except Exception as exc:  # any storage error here means "the rest is unreadable"
                    self.stats.notes.append(f"stopped reading {reader.path.name} early: {exc}")
                    break
                yield conn.topic, log_time, raw

    def frames(
        self, image_topic: str, gt_prefix: str | None = "/gt", camera_info_topic: str | None = None
    ) -> Iterator[BagFrame]:
        """The decodable images of ``image_topic`` with their ground truth and camera info.

        Images in other encodings than ``messages.CAMERA_ENCODINGS`` are skipped and counted.
        """
        self.require_image_topic(image_topic)
        gt = self.ground_truth_topics(gt_prefix) if gt_prefix else {}
        gt_by_topic = {topic: key for key, topic in gt.items()}
        if camera_info_topic is None:
            camera_info_topic = layout.camera_info_topic(image_topic)
        if self.topics.get(camera_info_topic) != messages.CAMERA_INFO:
            camera_info_topic = None
        right_info_topic = layout.right_camera_info_topic(camera_info_topic) if camera_info_topic else None
        if self.topics.get(right_info_topic) != messages.CAMERA_INFO:
            right_info_topic = None
        self.stats.images_expected = self._expected.get(image_topic)

        pending: OrderedDict[int, dict[str, Any]] = OrderedDict()  # stamp -> parts, in arrival order
        latest_info = None
        baseline: float | None = None
        self.stats.images_read = 0

        def complete(entry: dict[str, Any]) -> bool:
            return "image" in entry and len(entry["gt"]) == len(gt)

        def emit(entry: dict[str, Any]) -> BagFrame | None:
            frame = self._decode(entry, self.stats.images_read, latest_info, baseline)
            if frame is not None:
                self.stats.images_read += 1
            return frame

        info_topics = {t for t in (camera_info_topic, right_info_topic) if t}
        for topic, log_time, raw in self._messages({image_topic, *gt_by_topic, *info_topics}):
            msgtype = messages.CAMERA_INFO if topic in info_topics else messages.IMAGE
            try:
                msg = messages.TYPESTORE.deserialize_cdr(raw, msgtype)
            except Exception:  # corrupt payload: count it, keep going
                self.stats.undecodable += 1
                continue
            stamp = messages.stamp_ns(msg.header)
            if topic == right_info_topic:
                baseline = -float(msg.p[3]) / float(msg.p[0]) if msg.p[0] > 0 and msg.p[3] < 0 else baseline
                continue
            if topic == camera_info_topic:
                latest_info = msg
                if stamp in pending:
                    pending[stamp]["camera_info"] = msg
                continue
            entry = pending.setdefault(stamp, {"gt": {}, "log_time": log_time})
            if topic == image_topic:
                entry.update(image=msg, raw=bytes(raw), log_time=log_time)
            else:
                entry["gt"][gt_by_topic[topic]] = msg
            while pending:
                head_stamp, head = next(iter(pending.items()))
                if not (complete(head) or log_time - head["log_time"] > _MATCH_WINDOW_NS):
                    break
                del pending[head_stamp]
                if "image" in head and (frame := emit(head)) is not None:
                    yield frame
        for head in pending.values():
            if "image" in head and (frame := emit(head)) is not None:
                yield frame
        count = self.stats.images_read
        if self.stats.images_expected is not None and count < self.stats.images_expected:
            self.stats.notes.append(
                f"metadata.yaml lists {self.stats.images_expected} images on {image_topic}; {count} were usable"
            )

    def _decode(self, entry: dict[str, Any], index: int, latest_info: Any, baseline: float | None) -> BagFrame | None:
        msg = entry["image"]
        if msg.encoding not in messages.CAMERA_ENCODINGS:
            self.stats.skipped_encodings[msg.encoding] += 1
            return None
        try:
            rgb = messages.to_rgb(messages.decode_image(msg), msg.encoding)
            ground_truth = {key: messages.decode_image(m) for key, m in entry["gt"].items()}
        except messages.UnsupportedImage as exc:
            self.stats.undecodable += 1
            if self.stats.undecodable == 1:
                self.stats.notes.append(f"undecodable image at stamp {messages.stamp_ns(msg.header)}: {exc}")
            return None
        mismatched = sorted(k for k, v in ground_truth.items() if v.shape[:2] != rgb.shape[:2])
        if mismatched:
            stamp = messages.stamp_ns(msg.header)
            self.stats.notes.append(f"ground truth {mismatched} at stamp {stamp} differs in size from its image; ignored")
            ground_truth = {k: v for k, v in ground_truth.items() if k not in mismatched}
        return BagFrame(
            index=index,
            log_time=entry["log_time"],
            stamp=messages.stamp_ns(msg.header),
            header=msg.header,
            encoding=msg.encoding,
            rgb=rgb,
            raw=entry["raw"],
            ground_truth=ground_truth,
            camera_info=entry.get("camera_info", latest_info),
            baseline=baseline,
        )
