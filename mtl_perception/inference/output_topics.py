"""The node's output topics (DESIGN.md section 4): one table for the node, the bag writers and the benches.

Written without ROS imports (message types are ROS type names): ``bag eval`` builds the same
messages from pipeline arrays with rosbags, the node resolves the names to rclpy classes, and
both read topic, type, encoding and what the pipeline must compute from here, so an output bag
and a live node cannot drift apart.
"""
from __future__ import annotations

from dataclasses import dataclass

IMAGE = "sensor_msgs/msg/Image"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
DISPARITY_IMAGE = "stereo_msgs/msg/DisparityImage"
MARKER_ARRAY = "visualization_msgs/msg/MarkerArray"
POINT_CLOUD2 = "sensor_msgs/msg/PointCloud2"


@dataclass(frozen=True)
class OutputTopic:
    """One output topic: its message type, the pipeline outputs it needs and, for a plain image,
    the ``PipelineResult`` field it publishes and that image's encoding."""

    msgtype: str
    needs: frozenset[str]
    field: str | None = None
    encoding: str | None = None


def _image(field: str, encoding: str) -> OutputTopic:
    return OutputTopic(IMAGE, frozenset({field}), field, encoding)


#: Output topic -> what it is. Topics are relative, so a namespace (launch argument) moves them all.
OUTPUT_TOPICS: dict[str, OutputTopic] = {
    "semantic/labels": _image("semantic", "mono8"),
    "semantic/color": _image("semantic_color", "rgb8"),
    "instance/labels": _image("instances", "mono16"),
    "instance/color": _image("instance_color", "rgb8"),
    "instance/markers": OutputTopic(MARKER_ARRAY, frozenset({"instances", "depth"})),
    "depth/image": _image("depth", "32FC1"),
    # f and T come with the camera, which the pipeline reports when it computes depth.
    "depth/disparity": OutputTopic(DISPARITY_IMAGE, frozenset({"disparity", "depth"})),
    "depth/color": _image("depth_color", "rgb8"),
    "points": OutputTopic(POINT_CLOUD2, frozenset({"depth", "semantic", "instances"})),
}
#: The plain image topics (field and encoding set).
IMAGE_TOPICS: dict[str, OutputTopic] = {t: o for t, o in OUTPUT_TOPICS.items() if o.field is not None}
#: One camera_info per group of image topics, next to them (image_transport's convention:
#: ``<group>/camera_info`` beside ``<group>/<image>``), at the resolution of those images.
CAMERA_INFOS: dict[str, tuple[str, ...]] = {
    "semantic/camera_info": ("semantic/labels", "semantic/color"),
    "instance/camera_info": ("instance/labels", "instance/color"),
    "depth/camera_info": ("depth/image", "depth/color"),
}
#: Topics made from network-resolution data whatever ``output_resolution`` is (3-D outputs:
#: a camera-sized cloud would be 64 times larger at 1024x2048 and no more accurate).
NETWORK_TOPICS = frozenset({"instance/markers", "points"})
#: Pipeline outputs that need metric depth: the camera's fx and the stereo baseline.
DEPTH_OUTPUTS = frozenset({"depth", "depth_color", "disparity"})


def pipeline_outputs(topics: list[str]) -> tuple[frozenset[str], frozenset[str]]:
    """What the pipeline computes for ``topics``: (outputs at ``output_resolution``, outputs
    at the network's resolution for points and markers)."""
    at_output = frozenset().union(*(OUTPUT_TOPICS[t].needs for t in topics if t not in NETWORK_TOPICS))
    at_network = frozenset().union(*(OUTPUT_TOPICS[t].needs for t in topics if t in NETWORK_TOPICS))
    return at_output, at_network
