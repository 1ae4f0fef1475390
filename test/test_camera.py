"""Camera calibration: camera_info in (ROI, binning, resize), output camera_info out, baseline choice."""
from __future__ import annotations

import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, RegionOfInterest

from inference_helpers import BASELINE, shared_checkpoint
from mtl_perception.inference.camera import CameraModel, camera_from_info, info_at
from mtl_perception.inference.factory import create_backend
from mtl_perception.inference.pipeline import Pipeline
from mtl_perception.ros import conversions as conv


def _info(**fields) -> CameraInfo:
    """A 2048 x 1024 sensor, fx 2000, principal point (1000, 500); a right camera of a 0.5 m rig."""
    base = dict(
        width=2048, height=1024, distortion_model="plumb_bob", d=[0.1, -0.05, 0.0, 0.0, 0.01],
        k=[2000.0, 0, 1000.0, 0, 2100.0, 500.0, 0, 0, 1],
        r=[1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0],
        p=[1900.0, 0, 990.0, -1900.0 * 0.5, 0, 1950.0, 505.0, 0, 0, 0, 1.0, 0],
    )
    base.update(fields)
    return CameraInfo(**base)


def _project(k: list[float], x: float, y: float, z: float) -> tuple[float, float]:
    return (k[0] * x + k[2] * z) / z, (k[4] * y + k[5] * z) / z


def test_binning_and_roi_give_the_intrinsics_of_the_image_received():
    # ROI 1024 x 512 at (512, 256) of the sensor, binned 2 x 2: a 512 x 256 image.
    info = _info(binning_x=2, binning_y=2, roi=RegionOfInterest(x_offset=512, y_offset=256, width=1024, height=512))
    cam = camera_from_info(info, 512, 256)
    assert (cam.fx, cam.fy) == (1000.0, 1050.0)
    # pixel centres: sensor pixels 2u', 2u'+1 (+ offset) make binned pixel u'
    assert cam.cx == pytest.approx((1000.0 - 512 + 0.5) / 2 - 0.5)
    assert cam.cy == pytest.approx((500.0 - 256 + 0.5) / 2 - 0.5)
    # the same ROI delivered unbinned, then resized by the driver to 512 x 256: the same camera
    unbinned = _info(roi=RegionOfInterest(x_offset=512, y_offset=256, width=1024, height=512))
    assert camera_from_info(unbinned, 512, 256) == cam


def test_uncalibrated_or_non_finite_camera_info_gives_no_camera():
    assert camera_from_info(_info(k=[0.0] * 9), 512, 256) is None
    assert camera_from_info(_info(k=[float("nan"), 0, 1000.0, 0, 2100.0, 500.0, 0, 0, 1]), 512, 256) is None


def test_the_baseline_in_p_is_read_only_when_asked():
    assert camera_from_info(_info(), 512, 256).baseline is None
    assert camera_from_info(_info(), 512, 256, use_baseline=True).baseline == pytest.approx(0.5)
    assert camera_from_info(_info(p=[0.0] * 12), 512, 256, use_baseline=True).baseline is None


def test_output_camera_info_projects_points_onto_the_same_pixels_as_the_resize():
    info = _info()
    for width, height in [(256, 128), (2048, 1024), (512, 384)]:
        cam = camera_from_info(info, 2048, 1024).scaled(width, height)
        out = conv.to_camera_info(info_at(cam, info), info.header)
        assert (out.width, out.height, out.binning_x, out.roi.width) == (width, height, 0, 0)
        assert list(out.d) == list(info.d) and out.distortion_model == "plumb_bob" and list(out.r) == list(info.r)
        sx, sy = width / 2048, height / 1024
        for point in [(0.0, 0.0, 5.0), (1.5, -0.7, 12.0)]:
            u, v = _project(list(info.k), *point)
            u2, v2 = _project(list(out.k), *point)
            assert (u2, v2) == pytest.approx(((u + 0.5) * sx - 0.5, (v + 0.5) * sy - 0.5))
        # P keeps its own principal point and Tx, scaled with the image: fx' * B stays -P'[3]
        assert out.p[0] == pytest.approx(1900.0 * sx) and out.p[3] == pytest.approx(-1900.0 * sx * 0.5)
        assert out.p[2] == pytest.approx((990.0 + 0.5) * sx - 0.5) and out.p[6] == pytest.approx((505.0 + 0.5) * sy - 0.5)


def test_the_training_camera_has_a_monocular_camera_info():
    cam = CameraModel.centred(140.0, 128, 64)
    fields = info_at(cam)
    assert fields.k == (140.0, 0.0, 63.5, 0.0, 140.0, 31.5, 0.0, 0.0, 1.0)
    assert fields.p[3] == 0.0 and fields.d == (0.0,) * 5 and (fields.width, fields.height) == (128, 64)


def test_metric_depth_uses_the_training_baseline_not_the_camera_infos(tmp_path_factory):
    """A camera_info whose P[3] describes a 0.5 m rig: depth still uses the model's 0.2 m."""
    pipeline = Pipeline(create_backend("torch", shared_checkpoint(tmp_path_factory), "cpu"))
    image = np.random.default_rng(0).integers(0, 256, (128, 256, 3), dtype=np.uint8)
    info = _info()
    default = pipeline(image, camera=camera_from_info(info, 256, 128), outputs={"depth", "disparity"})
    asked = pipeline(image, camera=camera_from_info(info, 256, 128, use_baseline=True), outputs={"depth", "disparity"})
    assert BASELINE != 0.5 and default.camera.baseline == BASELINE and asked.camera.baseline == pytest.approx(0.5)
    valid = np.isfinite(default.depth)
    assert valid.mean() > 0.5
    fx = 2000.0 * 256 / 2048
    np.testing.assert_allclose(default.depth[valid], fx * BASELINE / default.disparity[valid], rtol=1e-5)
    np.testing.assert_allclose(asked.depth[valid], default.depth[valid] * 0.5 / BASELINE, rtol=1e-5)
