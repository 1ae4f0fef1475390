"""The perception's outputs as an MCAP bag, for review in RViz (``ros2 bag play``) or Foxglove.

Topics and types are the node's (``inference.output_topics``, DESIGN.md section 4) under ``NAMESPACE``, with the input
image's header copied unchanged, so the review setup of a live vehicle works on an
evaluation bag too. The input image and camera info are copied alongside (byte for byte),
so one bag shows the camera and what the network made of it.

Offline evaluation builds the messages here from the pipeline's arrays: labels, colour
images, metric depth and ``stereo_msgs/DisparityImage``. ``instance/markers`` and ``points``
are built by the ROS node's own encoders, which need the ROS message packages; they appear in
bags written by live evaluation, which records the node's messages as published.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer

from mtl_perception.bag import messages
from mtl_perception.bag.topics import OUTPUT_NAMESPACE
from mtl_perception.errors import UserError
from mtl_perception.inference.output_topics import IMAGE_TOPICS

class OutputBag:
    """A new MCAP bag receiving raw messages or pipeline results; use as a context manager."""

    def __init__(self, path: str | Path, namespace: str = OUTPUT_NAMESPACE) -> None:
        self.path = Path(path)
        if self.path.exists():
            raise UserError(f"--out {self.path} exists; rosbag2 bags are never overwritten, choose another path")
        self.namespace = "/" + namespace.strip("/") if namespace.strip("/") else ""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = Writer(self.path, version=9, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        self._connections: dict[str, Any] = {}
        self.counts: dict[str, int] = {}

    def topic(self, relative: str) -> str:
        """The absolute topic of a node output."""
        return f"{self.namespace}/{relative}"

    def write_raw(self, topic: str, msgtype: str, log_time: int, raw: bytes) -> None:
        """A CDR-serialised message as it is (input copies, messages recorded from the node)."""
        if topic not in self._connections:
            self._connections[topic] = self._writer.add_connection(topic, msgtype, typestore=messages.TYPESTORE)
        self._writer.write(self._connections[topic], log_time, raw)
        self.counts[topic] = self.counts.get(topic, 0) + 1

    def write_input(self, frame: Any, image_topic: str, camera_info_topic: str, raw: bytes | None = None) -> None:
        """The input frame (a ``reader.BagFrame``) under its recorded topics: the image as sent (``raw``,
        default as recorded) and its camera info."""
        self.write_raw(image_topic, messages.IMAGE, frame.log_time, frame.raw if raw is None else raw)
        if frame.camera_info is not None:
            raw = messages.TYPESTORE.serialize_cdr(frame.camera_info, messages.CAMERA_INFO)
            self.write_raw(camera_info_topic, messages.CAMERA_INFO, frame.log_time, raw)

    def write(self, relative: str, msgtype: str, log_time: int, msg: Any) -> None:
        self.write_raw(self.topic(relative), msgtype, log_time, messages.TYPESTORE.serialize_cdr(msg, msgtype))

    def write_result(self, log_time: int, header: Any, result: Any, camera: Any | None, baseline: float | None) -> None:
        """The node's image outputs of one pipeline result (fields that are None are skipped).

        ``depth/disparity`` gets f from the camera the pipeline used for depth (``result.camera``),
        else from ``camera`` (the input's intrinsics), and T = ``baseline``; 0 where unknown.
        """
        for relative, topic in IMAGE_TOPICS.items():
            array = getattr(result, topic.field, None)
            if array is not None:
                msg = messages.image_message(np.asarray(array), topic.encoding, header)
                self.write(relative, topic.msgtype, log_time, msg)
        if getattr(result, "disparity", None) is not None:
            height, width = result.disparity.shape
            used = getattr(result, "camera", None) or (camera.scaled(width, height) if camera is not None else None)
            fx = used.fx if used is not None else 0.0
            msg = messages.disparity_message(np.asarray(result.disparity), header, fx, baseline or 0.0)
            self.write("depth/disparity", messages.DISPARITY_IMAGE, log_time, msg)

    def close(self) -> None:
        self._writer.close()

    def __enter__(self) -> "OutputBag":
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        # A failed evaluation still closes the bag properly: what was written stays readable.
        self.close()
