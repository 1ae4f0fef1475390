"""rosbag2 message types: building sensor_msgs messages from numpy and decoding images back.

Messages are ``rosbags`` dataclasses serialised to CDR with the ROS 2 Kilted typestore (the
distribution of our rclpy wheels), so a bag written here plays with ``ros2 bag play`` and
opens in Foxglove without a ROS install on the writing machine. Nothing here imports rclpy:
bag creation and offline evaluation run anywhere.

Image decoding honours ``step`` (rows padded by a driver) and ``is_bigendian`` because a bag
recorded from a real camera may have both (``rosbags-image`` ignores ``step``).
"""
from __future__ import annotations

import sys
from typing import Any

import cv2
import numpy as np
from rosbags.typesys import Stores, get_typestore

from mtl_perception.inference import output_topics

#: The ROS 2 distribution whose message definitions (and type hashes) go into written bags.
TYPESTORE = get_typestore(Stores.ROS2_KILTED)

IMAGE, CAMERA_INFO, DISPARITY_IMAGE = output_topics.IMAGE, output_topics.CAMERA_INFO, output_topics.DISPARITY_IMAGE

#: Encodings the perception accepts as camera input (DESIGN.md section 4) -> OpenCV conversion to RGB.
CAMERA_ENCODINGS = {
    "rgb8": None,
    "bgr8": cv2.COLOR_BGR2RGB,
    "rgba8": cv2.COLOR_RGBA2RGB,
    "bgra8": cv2.COLOR_BGRA2RGB,
    "mono8": cv2.COLOR_GRAY2RGB,
}

#: Encodings of the dense images this package writes: numpy dtype and channel count.
_ENCODING_LAYOUT = {
    "rgb8": (np.uint8, 3),
    "bgr8": (np.uint8, 3),
    "rgba8": (np.uint8, 4),
    "bgra8": (np.uint8, 4),
    "mono8": (np.uint8, 1),
    "mono16": (np.uint16, 1),
    "32FC1": (np.float32, 1),
    "32SC1": (np.int32, 1),
}

_Time = TYPESTORE.types["builtin_interfaces/msg/Time"]
_Header = TYPESTORE.types["std_msgs/msg/Header"]
_Image = TYPESTORE.types[IMAGE]
_CameraInfo = TYPESTORE.types[CAMERA_INFO]
_RegionOfInterest = TYPESTORE.types["sensor_msgs/msg/RegionOfInterest"]
_DisparityImage = TYPESTORE.types[DISPARITY_IMAGE]


class UnsupportedImage(ValueError):
    """An image message this package cannot turn into pixels (encoding, size or step)."""


def stamp_ns(header: Any) -> int:
    """A header's stamp in integer nanoseconds (the key frames and ground truth are matched on)."""
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def make_header(stamp: int, frame_id: str) -> Any:
    """A ``std_msgs/Header`` for ``stamp`` nanoseconds."""
    return _Header(stamp=_Time(sec=stamp // 1_000_000_000, nanosec=stamp % 1_000_000_000), frame_id=frame_id)


def image_message(array: np.ndarray, encoding: str, header: Any) -> Any:
    """A ``sensor_msgs/Image`` holding ``array`` (H x W or H x W x C) in ``encoding``."""
    dtype, channels = _ENCODING_LAYOUT[encoding]
    array = np.ascontiguousarray(array, dtype=dtype)
    if array.ndim != (2 if channels == 1 else 3) or (channels > 1 and array.shape[2] != channels):
        raise ValueError(f"{encoding} needs {channels} channel(s), got an array of shape {array.shape}")
    height, width = array.shape[:2]
    return _Image(
        header=header,
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=int(sys.byteorder == "big"),
        step=width * channels * array.dtype.itemsize,
        data=array.reshape(-1).view(np.uint8),
    )


def camera_info_message(
    header: Any, size: tuple[int, int], fx: float, fy: float, cx: float, cy: float, tx: float = 0.0
) -> Any:
    """A pinhole ``sensor_msgs/CameraInfo`` (plumb_bob, zero distortion) of a rectified camera.

    Cityscapes images are rectified, so D is zero and R the identity. ``tx`` is P[3]: 0 for
    the left (reference) camera of a stereo pair, ``-fx * baseline`` for the right one.
    """
    height, width = size
    k = np.array([fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0])
    p = np.array([fx, 0.0, cx, tx, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0])
    return _CameraInfo(
        header=header,
        height=height,
        width=width,
        distortion_model="plumb_bob",
        d=np.zeros(5),
        k=k,
        r=np.eye(3).reshape(-1),
        p=p,
        binning_x=0,
        binning_y=0,
        roi=_RegionOfInterest(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False),
    )


def disparity_message(disparity: np.ndarray, header: Any, focal_px: float, baseline_m: float) -> Any:
    """A ``stereo_msgs/DisparityImage`` (32FC1 pixels) with the focal length and baseline of depth = f*T/d."""
    finite = disparity[np.isfinite(disparity)]
    return _DisparityImage(
        header=header,
        image=image_message(disparity, "32FC1", header),
        f=float(focal_px),
        t=float(baseline_m),
        valid_window=_RegionOfInterest(
            x_offset=0, y_offset=0, height=disparity.shape[0], width=disparity.shape[1], do_rectify=False
        ),
        min_disparity=float(finite.min()) if finite.size else 0.0,
        max_disparity=float(finite.max()) if finite.size else 0.0,
        delta_d=0.0,
    )


def decode_image(msg: Any) -> np.ndarray:
    """The pixels of a ``sensor_msgs/Image`` (H x W or H x W x C, native byte order, a copy).

    Raises ``UnsupportedImage`` for an encoding outside ``_ENCODING_LAYOUT`` or a size/step
    that does not match the data, so a caller can skip and count such frames.
    """
    layout = _ENCODING_LAYOUT.get(msg.encoding)
    if layout is None:
        raise UnsupportedImage(f"unsupported encoding {msg.encoding!r}")
    dtype, channels = np.dtype(layout[0]), layout[1]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    row_bytes = width * channels * dtype.itemsize
    data = np.asarray(msg.data, dtype=np.uint8)
    if height == 0 or width == 0 or step < row_bytes or data.size < step * (height - 1) + row_bytes:
        raise UnsupportedImage(
            f"{width}x{height} {msg.encoding} image with step {step} does not fit its {data.size} data bytes"
        )
    if data.size < step * height:
        data = np.concatenate([data, np.zeros(step * height - data.size, np.uint8)])
    rows = data[: step * height].reshape(height, step)[:, :row_bytes]
    pixels = np.ascontiguousarray(rows).view(dtype.newbyteorder(">" if msg.is_bigendian else "<"))
    shape = (height, width) if channels == 1 else (height, width, channels)
    return np.array(pixels, dtype=dtype).reshape(shape)  # a native-order, writable copy


def to_rgb(pixels: np.ndarray, encoding: str) -> np.ndarray:
    """A camera image in any of ``CAMERA_ENCODINGS`` as H x W x 3 uint8 RGB (the network's input)."""
    if encoding not in CAMERA_ENCODINGS:
        raise UnsupportedImage(f"unsupported camera encoding {encoding!r}; expected one of {sorted(CAMERA_ENCODINGS)}")
    conversion = CAMERA_ENCODINGS[encoding]
    return pixels if conversion is None else cv2.cvtColor(pixels, conversion)
