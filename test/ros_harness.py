"""A real rclpy test client for the node tests: publishes camera frames, records every output.

It runs its own context and executor thread on the test's ROS domain (loopback only), so a
node under test may be another process (started as the launch file starts it) or an
in-process ``PerceptionNode`` added to the same executor.
"""
from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, CompressedImage
from std_msgs.msg import Header

from mtl_perception.ros import conversions as conv
from mtl_perception.inference.output_topics import OUTPUT_TOPICS
from mtl_perception.ros.node import MESSAGE_CLASSES
from mtl_perception.ros.qos import DIAGNOSTICS, profile

QOS = profile("reliable", 5)


def stamp_ns(header: Header) -> int:
    return header.stamp.sec * 10**9 + header.stamp.nanosec


def header_of(msg: Any) -> Header:
    """A MarkerArray has no header; its first marker (DELETEALL) carries the frame's."""
    return msg.markers[0].header if hasattr(msg, "markers") else msg.header


def message_type(topic: str) -> type:
    """The type of an output topic, also under a camera's namespace (``front/semantic/labels``)."""
    if topic.endswith("camera_info"):
        return CameraInfo
    return next(
        MESSAGE_CLASSES[o.msgtype] for name, o in OUTPUT_TOPICS.items() if topic == name or topic.endswith("/" + name)
    )


class Harness:
    """Publishers for image / camera_info under ``prefix``, subscriptions on demand."""

    def __init__(self, domain_id: int, prefix: str = "") -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = Node("tester", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._lock = threading.Lock()
        self.messages: dict[str, list[tuple[float, Any]]] = defaultdict(list)
        self._subscriptions: dict[str, Any] = {}
        self._publishers: dict[tuple[str, type], Any] = {}
        self.prefix = prefix
        self.subscribe(["/diagnostics"])
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()
        self._next_stamp = 1

    def _spin(self) -> None:
        while self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # noqa: BLE001 - shutdown races end the loop
                if not self.context.ok():
                    return
                raise

    def close(self) -> None:
        rclpy.shutdown(context=self.context)
        self._thread.join(timeout=5)

    # ------------------------------------------------------------------ subscriptions
    def _topic(self, name: str) -> str:
        return name if name.startswith("/") else f"{self.prefix}/{name}"

    def subscribe(self, topics: Iterable[str]) -> None:
        for topic in topics:
            full = self._topic(topic)
            if full in self._subscriptions:
                continue
            kind, qos = (DiagnosticArray, DIAGNOSTICS) if topic == "/diagnostics" else (message_type(topic), QOS)
            self._subscriptions[full] = self.node.create_subscription(kind, full, self._recorder(topic), qos)

    def unsubscribe(self, topics: Iterable[str]) -> None:
        for topic in topics:
            sub = self._subscriptions.pop(self._topic(topic), None)
            if sub is not None:
                self.node.destroy_subscription(sub)

    def _recorder(self, topic: str) -> Callable[[Any], None]:
        def record(msg: Any) -> None:
            with self._lock:
                self.messages[topic].append((time.monotonic(), msg))

        return record

    def received(self, topic: str, stamp: int) -> Any | None:
        with self._lock:
            for _, msg in self.messages[topic]:
                if stamp_ns(header_of(msg)) == stamp:
                    return msg
        return None

    def diagnostics(self, input_topic: str, since: float = 0.0) -> list[dict[str, Any]]:
        """The node's diagnostics statuses (as dicts) received after ``since`` (monotonic)."""
        out = []
        with self._lock:
            for t, msg in self.messages["/diagnostics"]:
                for status in msg.status:
                    values = {kv.key: kv.value for kv in status.values}
                    if t >= since and values.get("input", "").startswith(input_topic):
                        out.append({"level": status.level, "message": status.message, **values})
        return out

    # ------------------------------------------------------------------ publishing
    def publish(self, topic: str, msg: Any) -> None:
        key = (self._topic(topic), type(msg))
        if key not in self._publishers:
            self._publishers[key] = self.node.create_publisher(type(msg), key[0], QOS)
        self._publishers[key].publish(msg)

    def header(self) -> Header:
        """A fresh header with a unique stamp (ns since an arbitrary epoch, ROS-time like)."""
        header = Header(frame_id="test_camera_optical_frame")
        now = self.node.get_clock().now().nanoseconds + self._next_stamp
        self._next_stamp += 1
        header.stamp.sec, header.stamp.nanosec = divmod(now, 10**9)
        return header

    def send_image(self, pixels: np.ndarray, encoding: str = "rgb8", topic: str = "image") -> int:
        header = self.header()
        self.publish(topic, conv.numpy_to_image(pixels, encoding, header))
        return stamp_ns(header)

    def send_compressed(self, data: bytes, fmt: str = "jpeg", topic: str = "image/compressed") -> int:
        header = self.header()
        self.publish(topic, CompressedImage(header=header, format=fmt, data=data))
        return stamp_ns(header)

    def send_camera_info(self, info: CameraInfo, topic: str = "camera_info") -> None:
        info.header = self.header()
        self.publish(topic, info)

    # ------------------------------------------------------------------ waiting
    @staticmethod
    def wait_for(predicate: Callable[[], Any], timeout: float, period: float = 0.02) -> Any:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            value = predicate()
            if value:
                return value
            time.sleep(period)
        return predicate()

    def send_until(
        self, send: Callable[[], int], topics: Iterable[str], timeout: float, per_frame: float = 5.0
    ) -> tuple[int, dict[str, Any]]:
        """Send frames until one frame's messages arrive on every topic; (stamp, {topic: msg}).

        Needed because a new subscription is matched by the node's writers only after
        discovery: the first frames after subscribing may reach some topics and not others.
        """
        topics = list(topics)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            stamp = send()
            got = self.wait_for(
                lambda: all(self.received(t, stamp) is not None for t in topics), min(per_frame, end - time.monotonic())
            )
            if got:
                return stamp, {t: self.received(t, stamp) for t in topics}
        raise AssertionError(f"no frame reached all of {topics} within {timeout:.0f} s")


@contextmanager
def node_process(command: list[str], log: Path) -> Iterator[subprocess.Popen]:
    """The node under test as a process (output in ``log``), stopped with SIGINT as ``ros2 launch`` does."""
    with open(log, "w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError(f"the node ignored SIGINT; log:\n{log.read_text()[-3000:]}") from None


def connected_harness(
    domain_id: int, image: np.ndarray, image_topic: str, proc: subprocess.Popen, log: Path, timeout: float
) -> Harness:
    """A Harness once the node process answers a frame on ``semantic/labels`` (else its exit code and log)."""
    h = Harness(domain_id, prefix="")
    h.subscribe(["semantic/labels"])
    try:
        h.send_until(lambda: h.send_image(image, topic=image_topic), ["semantic/labels"], timeout)
    except AssertionError:
        h.close()
        raise AssertionError(
            f"the node produced nothing (exit code {proc.poll()}); log:\n{log.read_text()[-3000:]}"
        ) from None
    return h
