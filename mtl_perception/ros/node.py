"""``perception_node``: the ROS 2 adapter around the inference Pipeline (DESIGN.md section 4).

Threads: the executor thread runs the subscription callbacks, which only store the newest
frame (a frame the worker never took is dropped and counted), the parameter services and the
1 Hz diagnostics; one worker thread decodes, runs the pipeline and publishes. Latency
therefore stays one inference long however fast the camera is, and a slow frame never
blocks the callbacks.

Only the outputs somebody subscribes to are computed: the worker asks the pipeline for
exactly the outputs behind the topics with subscribers. Image outputs come at
``output_resolution`` (the network's by default: the per-frame cost then does not grow with
the camera's pixels), each group with a ``camera_info`` of that resolution next to it
(``CAMERA_INFOS``); points and markers are always made from network-resolution data. Bad frames (unknown encoding, wrong
step or size, empty, undecodable, non-finite network output) are logged (throttled per
kind, ``faults.py``), counted per kind in /diagnostics and skipped; the node goes on with the
next frame. Should the worker ever stop anyway, /diagnostics says so at ERROR level and
``main`` exits with status 1, so a supervisor (launch's ``respawn``, systemd) restarts the
node instead of it idling with a healthy look.
"""
from __future__ import annotations

import sys
import threading
import time
import traceback
from typing import Any

import cv2
import numpy as np
import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.clock import Clock, ClockType
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy_impl
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.subscription import Subscription
from rclpy.task import Future
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import Header
from stereo_msgs.msg import DisparityImage
from visualization_msgs.msg import MarkerArray

from mtl_perception.errors import UserError
from mtl_perception.memory import retain_freed_memory
from mtl_perception.inference.backend import Backend
from mtl_perception.inference.cache import default_cache_dir
from mtl_perception.inference.camera import CameraModel, info_at
from mtl_perception.inference.pipeline import Pipeline, PipelineResult
from mtl_perception.ros import conversions as conv
from mtl_perception.ros import parameters, qos
from mtl_perception.ros.arguments import check_ros_arguments, rcl_reason
from mtl_perception.ros.cache_folder import writable_cache_dir
from mtl_perception.ros.camera_info_check import refusal
from mtl_perception.ros.diagnostics import FrameStats, to_diagnostics
from mtl_perception.ros.faults import Fault, FaultReporter, FrameError
from mtl_perception.ros.latest_frames import Frame, LatestFrames
from mtl_perception.ros import middleware

NODE_NAME = "mtl_perception"
#: The one camera of the node (its topics are ``image`` and ``camera_info``).
_CAMERA = ""

#: Output topic -> (message type, pipeline outputs it needs). Topics are relative, so a
#: namespace (launch argument) moves them all.
OUTPUTS: dict[str, tuple[type, frozenset[str]]] = {
    "semantic/labels": (Image, frozenset({"semantic"})),
    "semantic/color": (Image, frozenset({"semantic_color"})),
    "instance/labels": (Image, frozenset({"instances"})),
    "instance/color": (Image, frozenset({"instance_color"})),
    "instance/markers": (MarkerArray, frozenset({"instances", "depth"})),
    "depth/image": (Image, frozenset({"depth"})),
    # f and T come with the camera, which the pipeline reports when it computes depth.
    "depth/disparity": (DisparityImage, frozenset({"disparity", "depth"})),
    "depth/color": (Image, frozenset({"depth_color"})),
    "points": (PointCloud2, frozenset({"depth", "semantic", "instances"})),
}
#: Image topics: the PipelineResult field each one publishes, and its encoding.
_IMAGE_TOPICS: dict[str, tuple[str, str]] = {
    "semantic/labels": ("semantic", "mono8"),
    "semantic/color": ("semantic_color", "rgb8"),
    "instance/labels": ("instances", "mono16"),
    "instance/color": ("instance_color", "rgb8"),
    "depth/image": ("depth", "32FC1"),
    "depth/color": ("depth_color", "rgb8"),
}
#: One camera_info per group of image topics, next to them (image_transport's convention:
#: ``<group>/camera_info`` beside ``<group>/<image>``), at the resolution of those images.
CAMERA_INFOS: dict[str, tuple[str, ...]] = {
    "semantic/camera_info": ("semantic/labels", "semantic/color"),
    "instance/camera_info": ("instance/labels", "instance/color"),
    "depth/camera_info": ("depth/image", "depth/color"),
}
#: Topics made from network-resolution data whatever ``output_resolution`` is (3-D outputs:
#: a camera-sized cloud would be 64 times larger at 1024x2048 and no more accurate).
_NETWORK_TOPICS = frozenset({"instance/markers", "points"})
_DEPTH_OUTPUTS = frozenset({"depth", "depth_color", "disparity"})


def pipeline_outputs(topics: list[str]) -> tuple[frozenset[str], frozenset[str]]:
    """What the pipeline computes for ``topics``: (outputs at ``output_resolution``, outputs
    at the network's resolution for points and markers)."""
    at_output = frozenset().union(*(OUTPUTS[t][1] for t in topics if t not in _NETWORK_TOPICS))
    at_network = frozenset().union(*(OUTPUTS[t][1] for t in topics if t in _NETWORK_TOPICS))
    return at_output, at_network


class FiniteGuard(Backend):
    """Wraps a backend and records whether its outputs were all finite.

    A NaN or inf from the network (corrupt weights, fp16 overflow) would otherwise flow into
    argmax and depth as plausible-looking numbers. The flag stays a device tensor until the
    pipeline's own host copy has synchronised, so a GPU pays no extra stall.
    """

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner.metadata, inner.device, inner.precision)
        self.inner = inner
        self.name = inner.name
        self.finite: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.inner.forward(x)
        # A sum is NaN or inf when any element is (finite outputs are far from overflowing
        # float32), and costs a fifth of isfinite().all(): no boolean tensor per output.
        sums = [t.sum(dtype=torch.float32) for t in out.values() if t.is_floating_point()]
        self.finite = torch.isfinite(torch.stack(sums)).all() if sums else None
        return out

    def check(self) -> None:
        """Raise FrameError if the last forward produced a non-finite value."""
        if self.finite is not None and not bool(self.finite):
            raise FrameError(Fault.NON_FINITE_OUTPUT, "non-finite network output (NaN or inf); frame skipped")

    def describe(self) -> str:
        return self.inner.describe()


def build_pipeline(values: dict[str, Any], backend: Backend | None = None) -> tuple[Pipeline, FiniteGuard]:
    """The pipeline the parameters describe; UserError for a missing or unreadable model.

    ``backend`` replaces the one the parameters name (tests, or an application that already
    holds the model); it is wrapped in a FiniteGuard either way.
    """
    from mtl_perception.inference.factory import create_backend

    if backend is None:
        precision = None if values["precision"] == "auto" else values["precision"]
        backend = create_backend(values["backend"], values["model_path"] or None, values["device"], precision)
    guard = FiniteGuard(backend)
    pipeline = Pipeline(
        guard,
        grouping=values["grouping"],
        output_resolution=values["output_resolution"],
        color_alpha=values["semantic_color_alpha"],
        depth_range=(values["depth_color_min_m"], values["depth_color_max_m"]),
    )
    return pipeline, guard


class PerceptionNode(Node):
    """Subscribes to ``image`` (and ``camera_info``), publishes the DESIGN.md section 4 topics."""

    def __init__(self, backend: Backend | None = None, facts: dict[str, str] | None = None, **node_kwargs: Any) -> None:
        """``backend``: see ``build_pipeline``; ``facts``: more fixed lines for /diagnostics."""
        super().__init__(NODE_NAME, **node_kwargs)
        self._values = parameters.declare(self, self._on_parameters)
        for line in parameters.unknown_names(list(self._parameter_overrides), self.has_parameter):
            self.get_logger().warning(line)
        # The model loads in the worker (an ONNX export or a TensorRT build takes minutes on a
        # Jetson): publishers and /diagnostics come first and say "loading model" meanwhile.
        self._pipeline: Pipeline | None = None
        self._guard: FiniteGuard | None = None
        self._loading_since = time.monotonic()
        self._stats = FrameStats()
        self._faults = FaultReporter(self.get_logger(), self._stats)
        #: Done (with the exit status) when the node can no longer serve: ``main`` then exits.
        self.failure: Future = Future()
        self._camera_info: CameraInfo | None = None
        self._camera_state = "training camera"
        self._last_topics: list[str] = []
        self._frames = LatestFrames([_CAMERA])
        steady = Clock(clock_type=ClockType.STEADY_TIME)

        out_qos = qos.profile(self._values["output_qos_reliability"], self._values["output_qos_depth"])
        self._output_pubs = {topic: self.create_publisher(kind, topic, out_qos) for topic, (kind, _) in OUTPUTS.items()}
        self._info_pubs = {topic: self.create_publisher(CameraInfo, topic, out_qos) for topic in CAMERA_INFOS}
        self._diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", qos.DIAGNOSTICS)

        transport = self._values["input_transport"]
        self._image_topic = self.resolve_topic_name("image") + ("/compressed" if transport == "compressed" else "")
        self._image_type = CompressedImage if transport == "compressed" else Image
        wanted = self._values["image_qos_reliability"]
        self._image_reliability = "reliable" if wanted == "auto" else wanted
        if wanted == "auto":
            self._adapt_image_qos(subscribe=False)
            self.create_timer(1.0, self._adapt_image_qos, clock=steady)
        self._image_sub = self._subscribe_image()
        self.create_subscription(CameraInfo, "camera_info", self._on_camera_info, qos.CAMERA_INFO)
        self.create_timer(1.0, self._publish_diagnostics, clock=steady)

        self._info = {
            "model": self._values["model_path"] or "default (package)",
            "input": f"{self._image_topic} ({transport})",
            **(facts or {}),
        }
        self._worker = threading.Thread(target=self._work, args=(backend,), name="inference", daemon=True)
        self._worker.start()

    # ------------------------------------------------------------------ executor thread
    def _subscribe_image(self) -> Subscription:
        profile = qos.profile(self._image_reliability, self._values["image_qos_depth"])
        return self.create_subscription(self._image_type, self._image_topic, self._on_image, profile)

    def _adapt_image_qos(self, subscribe: bool = True) -> None:
        """Follow the reliability of the camera's writers (``image_qos_reliability: auto``)."""
        infos = self.get_publishers_info_by_topic(self._image_topic)
        wanted = qos.adapt_reliability((i.qos_profile.reliability for i in infos), self._image_reliability)
        if wanted == self._image_reliability:
            return
        self.get_logger().info(f"image writers are {wanted}: subscribing {wanted}")
        self._image_reliability = wanted
        if subscribe:
            self.destroy_subscription(self._image_sub)
            self._image_sub = self._subscribe_image()

    def _on_image(self, msg: Image | CompressedImage) -> None:
        self._stats.received(replaced_unprocessed=self._frames.put(_CAMERA, msg))

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._camera_info = msg

    def _on_parameters(self, changes: dict[str, Any]) -> None:
        self._values.update(changes)
        if self._pipeline is None:
            return  # still loading: the pipeline takes the values when it is built
        self._pipeline.color_alpha = self._values["semantic_color_alpha"]
        self._pipeline.depth_range = (self._values["depth_color_min_m"], self._values["depth_color_max_m"])
        self._pipeline.output_resolution = self._values["output_resolution"]

    def _publish_diagnostics(self) -> None:
        stamp = self.get_clock().now().to_msg()
        info = {
            **self._info,
            "outputs": ",".join(self._last_topics) or "none (no subscribers)",
            "camera": self._camera_state,
            "output_resolution": self._values["output_resolution"],
            "image_qos": f"{self._image_reliability}, keep last {self._values['image_qos_depth']}",
        }
        loading = "" if self._pipeline is not None else (
            f"loading model {self._info['model']} ({time.monotonic() - self._loading_since:.0f} s)"
        )
        self._diagnostics.publish(to_diagnostics(
            self._stats.snapshot(), stamp, f"{self.get_name()}: pipeline", self._image_topic, info, loading
        ))

    # ------------------------------------------------------------------ worker thread
    def _work(self, backend: Backend | None) -> None:
        """The worker thread: load the model, serve frames; if either ends other than by
        ``stop``, fail loudly."""
        try:
            if self._load(backend):
                self._serve()
        except BaseException as exc:  # noqa: BLE001 - whatever stopped the worker must be reported
            if self.context.ok():
                message = f"inference worker stopped: {type(exc).__name__}: {exc}"
                self._fail(f"{message}; exiting so that a supervisor can restart the node", 1, traceback.format_exc())

    def _load(self, backend: Backend | None) -> bool:
        """Build the pipeline; a missing or unreadable model ends the node (status 2, one line)."""
        try:
            pipeline, self._guard = build_pipeline(self._values, backend)
        except UserError as exc:
            self._fail(f"cannot start: {exc}", 2)
            return False
        self._info.update({
            "backend": pipeline.backend.describe(),
            "device": str(pipeline.device),
            "model_config_hash": pipeline.metadata.config_hash,
            "network_size": "x".join(map(str, pipeline.network_size or ("input",))),
        })
        self._pipeline = pipeline
        self._on_parameters({})  # values set while the model loaded
        self.get_logger().info(
            f"ready: {self._info['backend']} on {self._image_topic}, image QoS {self._image_reliability} "
            f"(model loaded in {time.monotonic() - self._loading_since:.1f} s)"
        )
        return True

    def _serve(self) -> None:
        while True:
            frame = self._frames.take().get(_CAMERA)
            if frame is None:
                return  # stopped
            try:
                self._process(frame)
            except FrameError as exc:
                self._faults(exc.fault, f"{self._image_topic}: {exc}")
            except Exception as exc:  # noqa: BLE001 - a pipeline bug must not silently kill the worker
                if not self.context.ok():
                    return  # shutting down: publishers are gone
                self._faults(Fault.INTERNAL, f"{self._image_topic}: frame failed: {type(exc).__name__}: {exc}")
                self.get_logger().debug(traceback.format_exc())

    def _fail(self, message: str, status: int, details: str = "") -> None:
        """The node cannot serve: ERROR in /diagnostics at once, exit ``status`` from ``main``."""
        self._stats.failed(message)
        self.get_logger().fatal(message)
        if details:
            self.get_logger().debug(details)
        self._publish_diagnostics()
        self.failure.set_result(status)

    def _wanted_topics(self) -> list[str]:
        return [topic for topic, pub in self._output_pubs.items() if pub.get_subscription_count() > 0]

    def _camera(self, width: int, height: int) -> CameraModel | None:
        """camera_info's intrinsics for this image size; None = the model's training camera
        (also for a camera_info that ``camera_info_check`` refuses: warned and reported)."""
        info = self._camera_info if self._values["use_camera_info"] else None
        if info is None:
            self._camera_state = "training camera"
            return None
        use_baseline = self._values["use_camera_info_baseline"]
        reason = refusal(info, width, height, use_baseline)
        if reason is not None:
            self._camera_state = f"training camera (camera_info refused: {reason})"
            self._faults(Fault.CAMERA_INFO_REFUSED, f"camera_info refused: {reason}; using the training camera")
            return None
        self._camera_state = "camera_info"
        return conv.camera_from_info(info, width, height, use_baseline=use_baseline)

    def _producible(self, topics: list[str], camera: CameraModel | None) -> list[str]:
        """The wanted topics this model and camera can produce; a throttled warning names the rest."""
        meta = self._pipeline.metadata
        has_fx = camera is not None or meta.camera_fx is not None
        has_baseline = (camera is not None and camera.baseline is not None) or meta.camera_baseline is not None
        available = self._pipeline.available if has_fx and has_baseline else self._pipeline.available - _DEPTH_OUTPUTS
        lost = [t for t in topics if not OUTPUTS[t][1] <= available]
        if lost:
            self._faults(
                Fault.OUTPUTS_UNAVAILABLE,
                f"not published: {', '.join(lost)} (the model lacks the task, or metric depth lacks a camera: "
                "no camera_info with a baseline and no training camera recorded in the model)",
            )
        return [t for t in topics if t not in lost]

    def _process(self, frame: Frame) -> None:
        topics = self._wanted_topics()
        if not topics:
            self._last_topics = []
            return
        image, order = self._decode(frame.msg)
        camera = self._camera(image.shape[1], image.shape[0])
        topics = self._last_topics = self._producible(topics, camera)
        if not topics:
            return
        needed, small = pipeline_outputs(topics)
        started = time.monotonic()
        try:
            result = self._pipeline(image, encoding=order, camera=camera, outputs=needed, network_outputs=small)
        except UserError as exc:
            raise FrameError(Fault.REFUSED_INPUT, str(exc)) from None
        pipeline_s = time.monotonic() - started
        self._guard.check()
        header = frame.msg.header
        # Encode everything before publishing anything: a frame goes out whole or not at all.
        messages = [(self._output_pubs[t], self._encode(t, result, image, order, header)) for t in topics]
        messages += self._camera_infos(result, header)
        for pub, msg in messages:
            pub.publish(msg)
        clock = self.get_clock()
        stamp_age = clock.now() - Time.from_msg(header.stamp, clock_type=clock.clock_type)
        self._stats.published(time.monotonic() - frame.received, stamp_age.nanoseconds * 1e-9, pipeline_s)

    def _decode(self, msg: Image | CompressedImage) -> tuple[np.ndarray, str]:
        """The frame's pixels (``ImageFormatError``, a FrameError, for a malformed message)."""
        if isinstance(msg, CompressedImage):
            size = conv.compressed_size(msg)  # from the header: refuse before the decoder allocates
            if size is not None:
                self._check_size(*size)
            image, order = conv.compressed_to_rgb(msg)
            self._check_size(image.shape[1], image.shape[0])
            return image, order
        self._check_size(int(msg.width), int(msg.height))  # before a byte is touched
        return conv.image_to_rgb(msg)

    def _check_size(self, width: int, height: int) -> None:
        """Refuse a frame above ``max_input_pixels``: its buffers would stay in the process."""
        limit = self._values["max_input_pixels"]
        if width * height > limit:
            raise FrameError(
                Fault.OVERSIZED, f"image {width}x{height} has more than max_input_pixels ({limit}) pixels"
            )

    def _camera_infos(self, result: PipelineResult, header: Header) -> list[tuple[Any, CameraInfo]]:
        """The camera_info of each image group somebody listens to, at the images' resolution."""
        wanted = [pub for pub in self._info_pubs.values() if pub.get_subscription_count() > 0]
        if not wanted:
            return []
        source = self._camera_info if self._values["use_camera_info"] else None
        msg = conv.to_camera_info(info_at(result.camera, source), header)
        return [(pub, msg) for pub in wanted]

    def _encode(self, topic: str, result: PipelineResult, image: np.ndarray, order: str, header: Header) -> Any:
        """The message of one output topic."""
        if topic in _IMAGE_TOPICS:
            field, encoding = _IMAGE_TOPICS[topic]
            return conv.numpy_to_image(getattr(result, field), encoding, header)
        if topic in _NETWORK_TOPICS:
            result = result.network or result
        camera = result.camera
        if topic == "depth/disparity":
            return conv.to_disparity_image(result.disparity, camera.fx, camera.baseline, header)
        if topic == "instance/markers":
            return conv.to_instance_markers(result.instance_list, result.instances, result.depth, camera, header)
        if topic == "points":
            rgb = self._rgb_at(image, order, result.depth.shape)
            points = conv.depth_to_points(
                result.depth, camera, rgb, result.semantic, result.instances,
                stride=self._values["points_stride"], max_depth=self._values["points_max_depth_m"],
            )
            return conv.to_point_cloud(points, header)
        raise KeyError(topic)

    @staticmethod
    def _rgb_at(image: np.ndarray, order: str, shape: tuple[int, int]) -> np.ndarray:
        """The camera image in RGB order at the outputs' resolution (for point colours)."""
        if image.shape[:2] != shape:
            image = cv2.resize(np.ascontiguousarray(image), (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
        return image[..., ::-1] if order == "bgr" else image

    # ------------------------------------------------------------------ lifetime
    @property
    def values(self) -> dict[str, Any]:
        """The current parameter values."""
        return dict(self._values)

    def stop(self) -> None:
        """Stop the worker after the frame in progress (a model still loading is not waited for:
        a TensorRT build may take minutes, and Ctrl-C must not)."""
        self._frames.close()
        self._worker.join(timeout=None if self._pipeline is not None else 2.0)


def main(args: list[str] | None = None) -> int:
    """Entry point of ``perception_node`` (and ``mtl-perception node``); returns the exit status.

    A bad parameter or a missing / unreadable model ends the start-up with one clear line
    and exit status 2 (no traceback): a launch file then shows the reason, not a stack.
    """
    argv = args if args is not None else sys.argv
    logger = rclpy.logging.get_logger(NODE_NAME)
    try:
        check_ros_arguments(argv)
        cache_note = writable_cache_dir()  # before the Fast DDS profile and the model cache use it
        fastdds = middleware.configure_fastdds()
        rclpy.init(args=argv)
    except UserError as exc:
        logger.fatal(f"cannot start: {exc}")
        return 2
    except (_rclpy_impl.RCLError, _rclpy_impl.UnknownROSArgsError) as exc:  # what rcl still refuses
        logger.fatal(f"cannot start: {rcl_reason(exc)}")
        return 2
    node = None
    status = 0
    try:
        if cache_note:
            logger.warning(cache_note)
        try:
            node = PerceptionNode(facts={"cache": cache_note or str(default_cache_dir())})
        except (UserError, InvalidParameterValueException, InvalidParameterTypeException) as exc:
            logger.fatal(f"cannot start: {exc}")
            return 2
        if node.values["retain_freed_memory"] and not retain_freed_memory():
            logger.info("C library is not glibc: freed memory goes back to the system (page faults per frame)")
        applied, line = middleware.report(fastdds, middleware.shared_memory_segments())
        (logger.info if applied else logger.warning)(line)
        rclpy.spin_until_future_complete(node, node.failure)
        status = node.failure.result() or 0
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        # rclpy's SIGINT handler invalidates the context at once; a timer that was publishing
        # at that moment fails. That is a shutdown, not an error.
        if rclpy.ok():
            raise
    finally:
        if node is not None:
            node.stop()
            node.destroy_node()
        rclpy.try_shutdown()
    return status


if __name__ == "__main__":
    sys.exit(main())
