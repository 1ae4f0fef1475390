"""The camera and the consumers of a live bag replay, as one rclpy node in this process.

Publishes recorded camera messages byte for byte and hands every output message (raw CDR) to
a callback with its arrival time; ``mtl_perception.bag.live_eval`` does the timing and scoring
and names the outputs with their ROS type names, so this module needs nothing of ``bag``.
"""
from __future__ import annotations

import importlib
import sys
import threading
import time
from typing import Any, Mapping

from mtl_perception.ros.middleware import configure_camera_process


def message_class(type_name: str) -> type:
    """The rclpy message class of a ROS type name such as ``sensor_msgs/msg/Image``."""
    package, kind, name = type_name.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), name)


class ReplayClient:
    """This process's side of the replay: publishers of the camera, subscribers of every output."""

    def __init__(self, namespace: str, outputs: Mapping[str, str], on_output: Any) -> None:
        """``outputs``: topic relative to ``namespace`` -> its ROS type name."""
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image

        print(f"bag replay: {configure_camera_process()}", file=sys.stderr)  # before the first participant
        self.context = Context()
        rclpy.init(args=[], context=self.context)  # not sys.argv: those are this command's arguments
        self.node = rclpy.create_node("mtl_bag_replay", namespace=namespace, context=self.context)
        # Reliable keep-last like the node's defaults; the subscribers keep a long history so
        # that this measuring end never drops what the node delivered.
        camera_qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.VOLATILE,
        )
        output_qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.VOLATILE,
        )
        self.image = self.node.create_publisher(Image, "image", camera_qos)
        self.camera_info = self.node.create_publisher(CameraInfo, "camera_info", camera_qos)
        for relative, type_name in outputs.items():
            self.node.create_subscription(
                message_class(type_name), relative,
                lambda raw, relative=relative: on_output(relative, time.perf_counter(), raw), output_qos, raw=True,
            )
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._spin = threading.Thread(target=self._spin_forever, daemon=True)
        self._spin.start()

    def _spin_forever(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # the context was shut down under it: the replay is over
            pass

    def publish(self, image_raw: bytes, info_raw: bytes | None) -> float:
        """Publish camera info then image; return the image's publish time (perf_counter)."""
        if info_raw is not None:
            self.camera_info.publish(info_raw)
        t = time.perf_counter()
        self.image.publish(image_raw)
        return t

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2)
        self.node.destroy_node()
        self.context.try_shutdown()
        self._spin.join(timeout=2)
