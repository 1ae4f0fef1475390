"""Message <-> numpy conversions of the ROS node, checked against independent decoders.

Encoded images are read back with rosbags-image (its own decoder, not ours); point clouds
with a reader built from the message's PointField list; markers against a hand-computed
back-projection.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

import cv2
import numpy as np
import pytest
from rosbags.image import message_to_cvimage
from sensor_msgs.msg import CompressedImage, Image, PointField
from std_msgs.msg import Header
from visualization_msgs.msg import Marker

from mtl_perception.data.labels import CLASS_NAMES, PALETTE, train_id
from mtl_perception.ros import conversions as conv

RNG = np.random.default_rng(0)
HEADER = Header(frame_id="camera_optical_frame")
HEADER.stamp.sec, HEADER.stamp.nanosec = 1_500_000_000, 123


def random_pixels(encoding: str, height: int = 6, width: int = 5) -> np.ndarray:
    dtype, channels = conv.ENCODINGS[encoding]
    shape = (height, width) if channels == 1 else (height, width, channels)
    if dtype == np.float32:
        return RNG.normal(size=shape).astype(np.float32)
    return RNG.integers(0, np.iinfo(dtype).max, size=shape, dtype=dtype)


@pytest.mark.parametrize("encoding", list(conv.ENCODINGS))
def test_encode_matches_an_independent_decoder_and_round_trips(encoding):
    pixels = random_pixels(encoding)
    msg = conv.numpy_to_image(pixels, encoding, HEADER)
    assert (msg.height, msg.width, msg.encoding) == (6, 5, encoding)
    assert msg.header.stamp.nanosec == 123 and msg.header.frame_id == "camera_optical_frame"
    np.testing.assert_array_equal(message_to_cvimage(msg), pixels)
    np.testing.assert_array_equal(conv.image_to_numpy(msg), pixels)


def _padded(pixels: np.ndarray, encoding: str, pad: int, big_endian: bool = False) -> Image:
    """An Image whose rows carry ``pad`` bytes of padding, as some camera drivers send."""
    rows = pixels.reshape(pixels.shape[0], -1)
    if big_endian:
        rows = rows.astype(rows.dtype.newbyteorder(">"))
    raw = rows.view(np.uint8).reshape(pixels.shape[0], -1)
    padded = np.concatenate([raw, np.full((raw.shape[0], pad), 0xAB, np.uint8)], axis=1)
    return Image(
        height=pixels.shape[0], width=pixels.shape[1], encoding=encoding, step=padded.shape[1],
        is_bigendian=big_endian, data=padded.tobytes(),
    )


@pytest.mark.parametrize("encoding", ["rgb8", "mono16", "32FC1"])
def test_decode_honours_row_padding(encoding):
    pixels = random_pixels(encoding)
    np.testing.assert_array_equal(conv.image_to_numpy(_padded(pixels, encoding, pad=7)), pixels)


def test_decode_swaps_big_endian_data():
    pixels = random_pixels("mono16")
    msg = _padded(pixels, "mono16", pad=0, big_endian=True)
    assert msg.is_bigendian != (sys.byteorder == "big")
    np.testing.assert_array_equal(conv.image_to_numpy(msg), pixels)


@pytest.mark.parametrize(
    "encoding, order, channels", [("rgb8", "rgb", [0, 1, 2]), ("bgr8", "bgr", [0, 1, 2]),
                                  ("rgba8", "rgb", [0, 1, 2]), ("bgra8", "bgr", [0, 1, 2])]
)
def test_camera_input_drops_alpha_and_reports_channel_order(encoding, order, channels):
    pixels = random_pixels(encoding)
    rgb, got_order = conv.image_to_rgb(conv.numpy_to_image(pixels, encoding, HEADER))
    assert got_order == order and rgb.shape == (6, 5, 3)
    np.testing.assert_array_equal(rgb, pixels[..., channels])


def test_mono8_input_is_repeated_to_three_channels():
    pixels = random_pixels("mono8")
    rgb, order = conv.image_to_rgb(conv.numpy_to_image(pixels, "mono8", HEADER))
    assert order == "rgb"
    np.testing.assert_array_equal(rgb, np.stack([pixels] * 3, axis=-1))


def _image(**overrides) -> Image:
    fields = dict(height=4, width=3, encoding="rgb8", step=9, data=bytes(36))
    fields.update(overrides)
    return Image(**fields)


@pytest.mark.parametrize(
    "msg, message",
    [
        (_image(encoding="yuv422"), "unsupported camera encoding 'yuv422'"),
        (_image(encoding="16UC1", step=6, data=bytes(24)), "unsupported camera encoding '16UC1'"),
        (_image(height=0, width=0, step=0, data=b""), "empty image (0x0"),
        (_image(step=8), "step 8 is shorter than one row: width 3 x 3 bytes per pixel (rgb8) = 9"),
        (_image(data=bytes(30)), "truncated data: 30 bytes, expected step 9 x height 4 = 36"),
        (_image(data=bytes(40)), "data size does not match: 40 bytes, expected step 9 x height 4 = 36"),
    ],
)
def test_bad_images_raise_a_clear_error(msg, message):
    with pytest.raises(conv.ImageFormatError) as exc:
        conv.image_to_rgb(msg)
    assert message in str(exc.value)


def test_unknown_encoding_of_an_output_is_a_clear_error():
    with pytest.raises(conv.ImageFormatError, match="unsupported encoding 'bayer_rggb8'"):
        conv.image_to_numpy(_image(encoding="bayer_rggb8"))


def test_encoder_refuses_an_array_that_does_not_fit_the_encoding():
    with pytest.raises(ValueError, match="mono16 needs uint16"):
        conv.numpy_to_image(np.zeros((2, 2), np.uint8), "mono16", HEADER)


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_compressed_images_decode_to_bgr(ext):
    bgr = RNG.integers(0, 256, size=(16, 24, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(ext, bgr)
    assert ok
    pixels, order = conv.compressed_to_rgb(CompressedImage(format=ext[1:], data=buf.tobytes()))
    assert order == "bgr" and pixels.shape == (16, 24, 3)
    if ext == ".png":  # lossless
        np.testing.assert_array_equal(pixels, bgr)


@pytest.mark.parametrize(
    "data, message", [(b"", "empty compressed image"), (b"\xff\xd8garbage", "cannot decode compressed image")]
)
def test_bad_compressed_images_raise_a_clear_error(data, message):
    with pytest.raises(conv.ImageFormatError, match=message):
        conv.compressed_to_rgb(CompressedImage(format="jpeg", data=data))


@pytest.mark.parametrize(
    "values, expected",
    [([[1.0, 2.0], [3.0, 8.0]], (1.0, 8.0)), ([[np.inf, 2.0], [np.nan, 8.0]], (2.0, 8.0)), ([[np.nan, np.inf]], (0.0, 0.0))],
)
def test_disparity_range_counts_finite_values_only(values, expected):
    msg = conv.to_disparity_image(np.array(values, np.float32), f=500.0, t=0.22, header=HEADER)
    assert (msg.min_disparity, msg.max_disparity) == expected


def test_disparity_image_carries_f_t_and_range():
    disparity = np.array([[1.0, 2.0], [np.nan, 8.0]], np.float32)
    msg = conv.to_disparity_image(disparity, f=500.0, t=0.22, header=HEADER)
    assert (msg.f, msg.t) == (500.0, pytest.approx(0.22))
    assert (msg.min_disparity, msg.max_disparity) == (1.0, 8.0)
    assert msg.image.encoding == "32FC1" and msg.header.frame_id == HEADER.frame_id
    assert (msg.valid_window.width, msg.valid_window.height) == (2, 2)
    np.testing.assert_array_equal(message_to_cvimage(msg.image), disparity)


@dataclass
class Camera:
    fx: float = 100.0
    fy: float = 120.0
    cx: float = 3.5
    cy: float = 2.0


_FIELD_TYPES = {PointField.FLOAT32: "<f4", PointField.UINT8: "u1", PointField.UINT16: "<u2", PointField.UINT32: "<u4"}


def read_cloud(msg) -> np.ndarray:
    """Decode a PointCloud2 from its own field list (not from POINT_DTYPE)."""
    dtype = np.dtype(
        {
            "names": [f.name for f in msg.fields],
            "formats": [_FIELD_TYPES[f.datatype] for f in msg.fields],
            "offsets": [f.offset for f in msg.fields],
            "itemsize": msg.point_step,
        }
    )
    assert len(msg.data) == msg.row_step * msg.height
    return np.frombuffer(msg.data, dtype=dtype, count=msg.width * msg.height)


def test_point_cloud_back_projects_finite_pixels_with_colour_label_and_instance():
    h, w = 4, 8
    depth = np.full((h, w), 10.0, np.float32)
    depth[0, 0], depth[1, 1], depth[2, 2] = np.nan, np.inf, 200.0  # unknown, sky, beyond max range
    rgb = RNG.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    labels = RNG.integers(0, 19, size=(h, w), dtype=np.uint8)
    instances = RNG.integers(0, 3000, size=(h, w), dtype=np.uint16)
    cam = Camera()
    points = conv.depth_to_points(depth, cam, rgb, labels, instances, stride=1, max_depth=80.0)
    msg = conv.to_point_cloud(points, HEADER)
    assert [f.name for f in msg.fields] == ["x", "y", "z", "rgb", "label", "instance"]
    assert msg.is_dense and msg.height == 1 and msg.width == h * w - 3
    cloud = read_cloud(msg)
    v, u = np.nonzero(np.isfinite(depth) & (depth <= 80.0))
    np.testing.assert_allclose(cloud["x"], (u - cam.cx) * 10.0 / cam.fx, rtol=1e-6)
    np.testing.assert_allclose(cloud["y"], (v - cam.cy) * 10.0 / cam.fy, rtol=1e-6)
    np.testing.assert_array_equal(cloud["z"], 10.0)
    packed = cloud["rgb"].view(np.uint32)
    np.testing.assert_array_equal(np.stack([packed >> 16, (packed >> 8) & 255, packed & 255], -1), rgb[v, u])
    np.testing.assert_array_equal(cloud["label"], labels[v, u])
    np.testing.assert_array_equal(cloud["instance"], instances[v, u])


def test_point_cloud_stride_keeps_every_nth_pixel_at_its_true_coordinates():
    depth = np.full((6, 9), 5.0, np.float32)
    zeros = np.zeros((6, 9), np.uint8)
    points = conv.depth_to_points(depth, Camera(cx=0.0, cy=0.0), np.zeros((6, 9, 3), np.uint8), zeros,
                                  zeros.astype(np.uint16), stride=3)
    assert len(points) == 2 * 3
    np.testing.assert_allclose(sorted(set(points["x"] * 100.0 / 5.0)), [0.0, 3.0, 6.0], atol=1e-5)


def test_markers_put_a_class_coloured_sphere_and_text_at_each_instance_centroid():
    @dataclass
    class Inst:
        id: int
        train_id: int
        score: float

    cam = Camera(fx=100.0, fy=100.0, cx=0.0, cy=0.0)
    instances = np.zeros((10, 10), np.uint16)
    depth = np.full((10, 10), 20.0, np.float32)
    instances[2:5, 2:5] = 1  # centre pixel (3, 3)
    depth[2:5, 2:5] = 8.0
    depth[2, 2] = 100.0  # a bled background pixel must not move the median
    instances[7:9, 6:9] = 2
    depth[7:9, 6:9] = np.nan  # no depth: no 3-D position, no marker
    car, person = train_id("car"), train_id("person")
    msg = conv.to_instance_markers([Inst(1, car, 0.9), Inst(2, person, 0.5)], instances, depth, cam, HEADER)
    assert msg.markers[0].action == Marker.DELETEALL
    sphere, text = msg.markers[1:]
    assert len(msg.markers) == 3
    assert sphere.type == Marker.SPHERE and sphere.id == 1 and sphere.header.frame_id == HEADER.frame_id
    assert (sphere.pose.position.x, sphere.pose.position.y, sphere.pose.position.z) == pytest.approx((0.24, 0.24, 8.0))
    assert (sphere.color.r, sphere.color.g, sphere.color.b) == pytest.approx(tuple(PALETTE[car] / 255.0))
    assert text.type == Marker.TEXT_VIEW_FACING and text.text == f"{CLASS_NAMES[car]} 0.90"
    assert text.pose.position.y < sphere.pose.position.y  # above it (optical frame: y down)

    # What bag eval --live reads back over the wire: the scores in the captions, by instance id.
    from rclpy.serialization import serialize_message

    from mtl_perception.bag.messages import TYPESTORE
    from mtl_perception.bag.scoring import scores_from_markers

    received = TYPESTORE.deserialize_cdr(serialize_message(msg), "visualization_msgs/msg/MarkerArray")
    assert scores_from_markers(received) == {1: pytest.approx(0.9)}
