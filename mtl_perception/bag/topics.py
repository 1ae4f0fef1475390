"""The topic layout of the bags ``mtl-perception bag make`` writes and ``bag eval`` reads by default.

Kept free of heavy imports: the command line builds its ``--help`` from these defaults.
"""
from __future__ import annotations

from dataclasses import dataclass

#: Cityscapes' camera runs at 17 Hz (the rate of the leftImg8bit_sequence snippets).
DEFAULT_RATE_HZ = 17.0
#: Fixed first stamp (2017-07-14, seconds) so that the same dataset always gives the same bag bytes.
DEFAULT_START_TIME_S = 1_500_000_000.0
STORAGE_NAMES = ("mcap", "sqlite3")
#: Namespace of the perception's output topics in evaluation output bags (the node's name).
OUTPUT_NAMESPACE = "/mtl_perception"
#: Ground-truth topics under the prefix and their encodings: train ids, raw gtFine ids, disparity px.
GT_ENCODINGS = {"semantic": "mono8", "instance": "mono16", "disparity": "32FC1"}


@dataclass(frozen=True)
class Topics:
    """Camera and ground-truth topic names; the image topic's namespace holds the camera info topics."""

    image: str = "/camera/image"
    gt_prefix: str = "/gt"
    frame_id: str = "camera_optical_frame"

    @property
    def camera_info(self) -> str:
        return camera_info_topic(self.image)

    @property
    def right_camera_info(self) -> str:
        return right_camera_info_topic(self.camera_info)

    @property
    def right_frame_id(self) -> str:
        fid = self.frame_id
        return fid.replace("camera", "camera_right", 1) if "camera" in fid else f"{fid}_right"

    def gt(self, key: str) -> str:
        return gt_topic(self.gt_prefix, key)


def camera_info_topic(image_topic: str) -> str:
    """ROS convention: ``camera_info`` beside the image topic (``/camera/image`` -> ``/camera/camera_info``)."""
    return image_topic.rsplit("/", 1)[0] + "/camera_info"


def right_camera_info_topic(camera_info: str) -> str:
    """The stereo partner's CameraInfo (its P[3] = -fx * baseline): ``/camera/camera_info`` -> ``/camera/right/camera_info``."""
    namespace, name = camera_info.rsplit("/", 1)
    return f"{namespace}/right/{name}"


def gt_topic(prefix: str, key: str) -> str:
    return f"{prefix.rstrip('/')}/{key}"
