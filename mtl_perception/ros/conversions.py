"""ROS messages <-> numpy: camera images in, labels, depth, disparity, points and markers out.

Every decoder validates a message against its own description (encoding, width, height,
step, data size) before it touches the bytes, and raises ``ImageFormatError`` with a message
that names what is wrong; a camera driver bug must give a clear log line, never a numpy
reshape traceback. Encoders fill ``data`` with ``array.array.frombytes`` straight from the
numpy buffer (one memcpy): a list or a memoryview goes through the generated setter element
by element, hundreds of times slower (``mtl-perception bench node`` reports both).
"""
from __future__ import annotations

import array
import io
import math
import sys
from typing import TYPE_CHECKING, Iterable

import numpy as np
from geometry_msgs.msg import Point
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField
from std_msgs.msg import ColorRGBA, Header
from stereo_msgs.msg import DisparityImage
from visualization_msgs.msg import Marker, MarkerArray

from mtl_perception.data.labels import PALETTE
from mtl_perception.inference import camera as geometry
from mtl_perception.inference.camera import CameraModel
from mtl_perception.postprocess.caption import CAPTION_NAMESPACE, instance_caption
from mtl_perception.ros.faults import Fault, FrameError

if TYPE_CHECKING:  # the pipeline (torch) is not needed to encode its results
    from mtl_perception.inference.pipeline import InstanceInfo

#: encoding -> (dtype, channels) for every encoding this package reads or writes.
ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "rgb8": (np.dtype(np.uint8), 3),
    "bgr8": (np.dtype(np.uint8), 3),
    "rgba8": (np.dtype(np.uint8), 4),
    "bgra8": (np.dtype(np.uint8), 4),
    "mono8": (np.dtype(np.uint8), 1),
    "mono16": (np.dtype(np.uint16), 1),
    "32FC1": (np.dtype(np.float32), 1),
}
#: Encodings the node accepts as camera input (colour order handed to the pipeline).
INPUT_ENCODINGS: dict[str, str] = {"rgb8": "rgb", "bgr8": "bgr", "rgba8": "rgb", "bgra8": "bgr", "mono8": "rgb"}

_NATIVE_BIG_ENDIAN = sys.byteorder == "big"


class ImageFormatError(FrameError, ValueError):
    """An image message whose encoding, size or step does not describe its data (``fault`` says which)."""


def _fill(buffer: np.ndarray) -> array.array:
    """A ``uint8[]`` message field holding a copy of ``buffer`` (one memcpy)."""
    data = array.array("B")
    data.frombytes(np.ascontiguousarray(buffer).reshape(-1).view(np.uint8))
    return data


def image_to_numpy(msg: Image) -> np.ndarray:
    """Image -> (H, W) or (H, W, C) array viewing ``msg.data`` (no copy), row padding honoured.

    Raises ``ImageFormatError`` for an unknown encoding, an empty image, a step shorter than
    one row of pixels, or data whose size is not ``step * height``.
    """
    if msg.encoding not in ENCODINGS:
        raise ImageFormatError(Fault.UNSUPPORTED_ENCODING, f"unsupported encoding '{msg.encoding}' (supported: {', '.join(ENCODINGS)})")
    dtype, channels = ENCODINGS[msg.encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height == 0 or width == 0:
        raise ImageFormatError(Fault.EMPTY_IMAGE, f"empty image ({width}x{height}, {len(msg.data)} bytes of data)")
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise ImageFormatError(
            Fault.BAD_STEP,
            f"step {step} is shorter than one row: width {width} x {channels * dtype.itemsize} bytes per "
            f"pixel ({msg.encoding}) = {row_bytes}"
        )
    expected = step * height
    if len(msg.data) != expected:
        kind = "truncated data" if len(msg.data) < expected else "data size does not match"
        raise ImageFormatError(Fault.BAD_DATA_SIZE, f"{kind}: {len(msg.data)} bytes, expected step {step} x height {height} = {expected}")
    if dtype.itemsize > 1 and bool(msg.is_bigendian) != _NATIVE_BIG_ENDIAN:
        dtype = dtype.newbyteorder()
    view = np.ndarray(
        shape=(height, width, channels),
        dtype=dtype,
        buffer=msg.data,
        strides=(step, channels * dtype.itemsize, dtype.itemsize),
    )
    return view[..., 0] if channels == 1 else view


def image_to_rgb(msg: Image) -> tuple[np.ndarray, str]:
    """A camera Image -> ((H, W, 3) uint8, "rgb" | "bgr") as the pipeline takes it.

    Alpha is dropped without a copy; mono8 is repeated to three channels.
    """
    if msg.encoding not in INPUT_ENCODINGS:
        raise ImageFormatError(
            Fault.UNSUPPORTED_ENCODING,
            f"unsupported camera encoding '{msg.encoding}' (supported: {', '.join(INPUT_ENCODINGS)})"
        )
    pixels = image_to_numpy(msg)
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=2)
    return pixels[..., :3], INPUT_ENCODINGS[msg.encoding]


def compressed_to_rgb(msg: CompressedImage) -> tuple[np.ndarray, str]:
    """A CompressedImage (JPEG, PNG, ...) -> ((H, W, 3) uint8, "bgr"), decoded with OpenCV."""
    import cv2

    if len(msg.data) == 0:
        raise ImageFormatError(Fault.EMPTY_IMAGE, f"empty compressed image (format '{msg.format}')")
    pixels = cv2.imdecode(np.frombuffer(msg.data, np.uint8), cv2.IMREAD_COLOR)
    if pixels is None:
        raise ImageFormatError(Fault.UNDECODABLE, f"cannot decode compressed image (format '{msg.format}', {len(msg.data)} bytes)")
    return pixels, "bgr"


def compressed_size(msg: CompressedImage) -> tuple[int, int] | None:
    """(width, height) from a compressed image's header, without decoding it; None if unknown.

    Lets the node refuse an oversized frame before the decoder allocates its pixels.
    """
    from PIL import Image as PILImage

    try:
        with PILImage.open(io.BytesIO(msg.data)) as header:
            return header.size
    except Exception:  # noqa: BLE001 - PIL's many "cannot identify" errors: the decoder will say why
        return None


def numpy_to_image(pixels: np.ndarray, encoding: str, header: Header) -> Image:
    """(H, W) or (H, W, C) array -> Image with ``header``; dtype and channels must fit ``encoding``."""
    dtype, channels = ENCODINGS[encoding]
    shape_ok = pixels.ndim == 2 if channels == 1 else (pixels.ndim == 3 and pixels.shape[2] == channels)
    if pixels.dtype != dtype or not shape_ok:
        raise ValueError(f"{encoding} needs {dtype} with {channels} channel(s), got {pixels.dtype} {pixels.shape}")
    msg = Image()
    msg.header = header
    msg.height, msg.width = int(pixels.shape[0]), int(pixels.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = _NATIVE_BIG_ENDIAN
    msg.step = msg.width * channels * dtype.itemsize
    msg.data = _fill(pixels)
    return msg


def camera_from_info(info: CameraInfo, width: int, height: int, use_baseline: bool = False) -> CameraModel | None:
    """Intrinsics of ``info`` for a ``width`` x ``height`` image; None if it is not calibrated.

    See ``inference.camera.camera_from_info`` (ROI, binning, resize; the baseline only when
    ``use_baseline``: metric depth uses the model's training baseline).
    """
    return geometry.camera_from_info(info, width, height, use_baseline)


def to_camera_info(fields: geometry.InfoFields, header: Header) -> CameraInfo:
    """The camera_info message of an output image (``inference.camera.info_at``), with ``header``."""
    return CameraInfo(
        header=header, width=fields.width, height=fields.height, distortion_model=fields.distortion_model,
        d=list(fields.d), k=list(fields.k), r=list(fields.r), p=list(fields.p),
    )


# Cityscapes disparities are stored in steps of 1/256 px (DESIGN.md section 3); the network
# regresses that quantity, so its resolution is no finer.
DISPARITY_STEP_PX = 1.0 / 256.0


def to_disparity_image(disparity: np.ndarray, f: float, t: float, header: Header) -> DisparityImage:
    """(H, W) float32 disparity in pixels -> DisparityImage (Z = f * T / d, f px, T metres)."""
    msg = DisparityImage()
    msg.header = header
    msg.image = numpy_to_image(disparity.astype(np.float32, copy=False), "32FC1", header)
    msg.f, msg.t = float(f), float(t)
    msg.valid_window.width, msg.valid_window.height = msg.image.width, msg.image.height
    msg.min_disparity, msg.max_disparity = _finite_range(disparity)
    msg.delta_d = DISPARITY_STEP_PX
    return msg


def _finite_range(values: np.ndarray) -> tuple[float, float]:
    """(min, max) of the finite values, (0, 0) if none. Two plain reductions first: the network's
    disparity is finite, and masking a camera-sized map copies every finite value (more than
    twice the cost of the whole message: docs/measurements.md)."""
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if math.isfinite(lo) and math.isfinite(hi):
        return lo, hi
    finite = values[np.isfinite(values)]
    return (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)


#: One point of ``points``: x y z (metres, camera optical frame), rgb packed as in PCL
#: (0x00RRGGBB read as FLOAT32, what RViz's RGB8 transformer expects), label (train id) and
#: instance (0 = none).
POINT_DTYPE = np.dtype(
    {
        "names": ["x", "y", "z", "rgb", "label", "instance"],
        "formats": ["<f4", "<f4", "<f4", "<u4", "u1", "<u2"],
        "offsets": [0, 4, 8, 12, 16, 18],
        "itemsize": 20,
    }
)
_POINT_FIELDS = [
    ("x", PointField.FLOAT32),
    ("y", PointField.FLOAT32),
    ("z", PointField.FLOAT32),
    ("rgb", PointField.FLOAT32),
    ("label", PointField.UINT8),
    ("instance", PointField.UINT16),
]


def depth_to_points(
    depth: np.ndarray,
    camera: CameraModel,
    rgb: np.ndarray,
    labels: np.ndarray,
    instances: np.ndarray,
    stride: int = 1,
    max_depth: float = float("inf"),
) -> np.ndarray:
    """Back-project every ``stride``-th pixel with 0 < depth <= ``max_depth`` -> POINT_DTYPE array.

    All images share the depth's (H, W); ``rgb`` is (H, W, 3) uint8 in RGB order. NaN
    (unknown) and +inf (sky) pixels are skipped, so the cloud is dense. Pixels are gathered
    by flat index from contiguous copies of the sub-sampled images: 2-D fancy indexing of
    strided views cost twice as much at 512x1024.
    """
    grid = (slice(None, None, stride), slice(None, None, stride))
    z_image = np.ascontiguousarray(depth[grid])
    width = z_image.shape[1]
    index = np.flatnonzero((z_image > 0) & (z_image <= max_depth))  # False for NaN and +inf
    rows, cols = np.divmod(index, width)
    z = z_image.ravel()[index]
    x_ray = ((np.arange(width) * stride - camera.cx) / camera.fx).astype(np.float32)
    y_ray = ((np.arange(z_image.shape[0]) * stride - camera.cy) / camera.fy).astype(np.float32)
    points = np.empty(index.shape[0], dtype=POINT_DTYPE)
    points["x"] = x_ray[cols] * z
    points["y"] = y_ray[rows] * z
    points["z"] = z
    color = np.ascontiguousarray(rgb[grid]).reshape(-1, 3)[index]
    packed = points.view(np.uint8).reshape(-1, POINT_DTYPE.itemsize)[:, 12:16]  # rgb, little endian: B G R 0
    packed[:, :3] = color[:, ::-1]
    packed[:, 3] = 0
    points["label"] = np.ascontiguousarray(labels[grid]).ravel()[index]
    points["instance"] = np.ascontiguousarray(instances[grid]).ravel()[index]
    return points


def to_point_cloud(points: np.ndarray, header: Header) -> PointCloud2:
    """POINT_DTYPE array -> unorganised PointCloud2 with fields x y z rgb label instance.

    ``is_dense`` (no invalid point) is computed, not assumed: a consumer that trusts it skips
    its own NaN checks.
    """
    msg = PointCloud2()
    msg.header = header
    msg.height, msg.width = 1, int(points.shape[0])
    msg.fields = [
        PointField(name=name, offset=POINT_DTYPE.fields[name][1], datatype=datatype, count=1)
        for name, datatype in _POINT_FIELDS
    ]
    msg.is_bigendian = False
    msg.point_step = POINT_DTYPE.itemsize
    msg.row_step = msg.point_step * msg.width
    msg.is_dense = bool(np.isfinite(points["x"]).all() and np.isfinite(points["y"]).all() and np.isfinite(points["z"]).all())
    msg.data = _fill(points)
    return msg


#: Sphere diameter (m): big enough to see next to a car at 50 m in RViz, small enough not to
#: hide a pedestrian's points at 5 m.
MARKER_DIAMETER_M = 0.5
#: Text height (m) and its lift above the sphere (optical frame: -y is up).
MARKER_TEXT_HEIGHT_M = 0.5
_TEXT_LIFT_M = 0.6
#: Pixels per instance (at most) whose median gives the marker's position.
MARKER_SAMPLES = 2048


def instance_centroids(
    instances: np.ndarray, depth: np.ndarray, camera: CameraModel
) -> dict[int, tuple[float, float, float]]:
    """3-D centroid (median x, y, z in metres) of each instance id's pixels with finite depth.

    The median rather than the mean: depth bleeds across object borders, and a few
    background pixels at 80 m would drag a mean far behind the object.
    """
    width = instances.shape[1]
    flat = instances.ravel()
    z_all = depth.ravel()
    index = np.flatnonzero((flat > 0) & np.isfinite(z_all))
    if index.size == 0:
        return {}
    # Stable sort of 16-bit ids is a radix sort; after it each instance is one slice (in image
    # order), and its median is taken over at most MARKER_SAMPLES evenly spaced pixels of it:
    # plenty for a marker, and it bounds the cost of large objects (docs/measurements.md).
    index = index[np.argsort(flat[index], kind="stable")]
    ids = flat[index]
    starts = np.flatnonzero(np.diff(ids, prepend=ids[0] - 1))
    ends = np.append(starts[1:], ids.size)
    centroids: dict[int, tuple[float, float, float]] = {}
    for lo, hi in zip(starts.tolist(), ends.tolist()):
        group = index[lo:hi:-(-(hi - lo) // MARKER_SAMPLES)]
        z = z_all[group]
        rows, cols = np.divmod(group, width)
        xyz = np.stack([(cols - camera.cx) * z / camera.fx, (rows - camera.cy) * z / camera.fy, z])
        centroids[int(ids[lo])] = tuple(float(m) for m in np.median(xyz, axis=1))
    return centroids


def to_instance_markers(
    instance_list: Iterable[InstanceInfo],
    instances: np.ndarray,
    depth: np.ndarray,
    camera: CameraModel,
    header: Header,
) -> MarkerArray:
    """One class-coloured sphere at the 3-D centroid and one ``"car 0.87"`` text per instance.

    The array starts with DELETEALL so instances of the previous frame vanish; instances
    without any finite depth pixel have no 3-D position and get no marker.
    """
    markers = MarkerArray()
    clear = Marker()
    clear.header = header
    clear.action = Marker.DELETEALL
    markers.markers.append(clear)
    centroids = instance_centroids(instances, depth, camera)
    for inst in instance_list:
        if inst.id not in centroids:
            continue
        x, y, z = centroids[inst.id]
        r, g, b = (PALETTE[inst.train_id] / 255.0).tolist()
        sphere = Marker(header=header, ns="instances", id=int(inst.id), type=Marker.SPHERE, action=Marker.ADD)
        sphere.pose.position = Point(x=x, y=y, z=z)
        sphere.pose.orientation.w = 1.0
        sphere.scale.x = sphere.scale.y = sphere.scale.z = MARKER_DIAMETER_M
        sphere.color = ColorRGBA(r=r, g=g, b=b, a=0.9)
        text = Marker(header=header, ns=CAPTION_NAMESPACE, id=int(inst.id), type=Marker.TEXT_VIEW_FACING, action=Marker.ADD)
        text.pose.position = Point(x=x, y=y - _TEXT_LIFT_M, z=z)
        text.pose.orientation.w = 1.0
        text.scale.z = MARKER_TEXT_HEIGHT_M
        text.color = ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0)
        text.text = instance_caption(inst.train_id, inst.score)
        markers.markers.extend([sphere, text])
    return markers
