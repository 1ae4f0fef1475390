"""``perception_node``: the ROS 2 adapter around the inference Pipeline (DESIGN.md section 4).

Threads: the executor thread runs the subscription callbacks, which only store the newest
frame (a frame the inference thread never took is dropped and counted), the parameter
services and the 1 Hz diagnostics; the inference thread decodes and runs the network
(``Pipeline.forward_many``); the publishing thread post-processes that round
(``Pipeline.finish``: grouping, depth, colours, the host copy), then encodes and publishes its
outputs, while the inference thread already runs the next round through the network
(``outbox.py``): the frame rate is that of the slower stage, not of both in a row. Latency
stays bounded (one run of each stage and one wait) however fast the camera is, and a slow
frame never blocks the callbacks.

Only the outputs somebody subscribes to are computed: the inference thread asks the pipeline
for exactly the outputs behind the topics with subscribers (a frame nobody wants is booked as
skipped). Image outputs come at ``output_resolution`` (the network's by default: the
per-frame cost then does not grow with the camera's pixels), each group with a
``camera_info`` of that resolution next to it (``CAMERA_INFOS``); points and markers are
always made from network-resolution data. Bad frames (unknown encoding, wrong step or size,
empty, undecodable, non-finite network output) are logged (throttled per kind,
``faults.py``), counted per kind in /diagnostics and rejected; the node goes on with the next
frame. Should either thread ever stop anyway, /diagnostics says so at ERROR level and
``main`` exits with status 1, so a supervisor (launch's ``respawn``, systemd) restarts the
node instead of it idling with a healthy look.
"""
from __future__ import annotations

import sys
import threading
from dataclasses import dataclass, field
import time
import traceback
from typing import Any

import numpy as np
import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.clock import Clock, ClockType
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy_impl
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.publisher import Publisher
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
from mtl_perception.inference.output_topics import (
    CAMERA_INFOS,
    DEPTH_OUTPUTS,
    IMAGE_TOPICS,
    NETWORK_TOPICS,
    OUTPUT_TOPICS,
    pipeline_outputs,
)
from mtl_perception.inference.pipeline import CameraFrame, ForwardedBatch, Pipeline, PipelineResult
from mtl_perception.ros import conversions as conv
from mtl_perception.ros import parameters, qos
from mtl_perception.ros.arguments import check_ros_arguments, rcl_reason
from mtl_perception.ros.cache_folder import writable_cache_dir
from mtl_perception.ros.camera_info_check import refusal
from mtl_perception.ros.diagnostics import FrameStats, to_diagnostics
from mtl_perception.ros.faults import Fault, FaultReporter, FrameError
from mtl_perception.ros.latest_frames import Frame, LatestFrames
from mtl_perception.ros.outbox import Outbox
from mtl_perception.ros import middleware
from mtl_perception.ros.compat import subscribe_with_message_times, without_event_handlers

NODE_NAME = "mtl_perception"

#: The rclpy class of each output message type named in ``output_topics``.
MESSAGE_CLASSES: dict[str, type] = {
    f"{cls.__module__.split('.')[0]}/msg/{cls.__name__}": cls
    for cls in (Image, CameraInfo, DisparityImage, MarkerArray, PointCloud2)
}


class FiniteGuard(Backend):
    """Wraps a backend and records whether its outputs were all finite.

    A NaN or inf from the network (corrupt weights, fp16 overflow) would otherwise flow into
    argmax and depth as plausible-looking numbers. On a GPU the flag is copied to pinned host
    memory behind the forward without waiting; it is read once the round's own host copy has
    synchronised (which waited for that forward), so a GPU pays no extra stall.
    """

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner.metadata, inner.device, inner.precision)
        self.inner = inner
        self.name = inner.name
        self.flags: list[torch.Tensor] = []  # one per forward since the last take

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.inner.forward(x)
        # A sum is NaN or inf when any element is (finite outputs are far from overflowing
        # float32), and costs a fifth of isfinite().all(): no boolean tensor per output.
        floats = [t for t in out.values() if t.is_floating_point()]
        if not floats:
            return out
        if self.device.type == "cpu":
            # numpy reduces on this thread; torch would wake its pool, outside the pipeline's
            # one-thread section, and wait at its barrier for a core another process holds.
            finite = torch.tensor(bool(np.isfinite([t.numpy().sum(dtype=np.float32) for t in floats]).all()))
        else:
            on_device = torch.isfinite(torch.stack([t.sum(dtype=torch.float32) for t in floats])).all()
            finite = torch.empty((), dtype=torch.bool, pin_memory=True)
            finite.copy_(on_device, non_blocking=True)
        self.flags.append(finite)  # a batch of cameras may take several forwards
        return out

    def take(self) -> list[torch.Tensor]:
        """The flags of the forwards since the last ``take``, for ``require_finite`` once these
        forwards' results are on the host (on a GPU they are valid only from then on)."""
        flags, self.flags = self.flags, []
        return flags

    @staticmethod
    def require_finite(flags: list[torch.Tensor]) -> None:
        """Raise FrameError if one of ``take``'s flags says a forward produced a non-finite value."""
        if not all(bool(flag) for flag in flags):
            raise FrameError(Fault.NON_FINITE_OUTPUT, "non-finite network output (NaN or inf); frame skipped")

    @property
    def max_batch(self) -> int | None:
        return self.inner.max_batch

    @property
    def reuses_outputs(self) -> bool:
        return self.inner.reuses_outputs

    def describe(self) -> str:
        return self.inner.describe()


def camera_names(values: dict[str, Any]) -> list[str]:
    """The cameras the ``cameras`` parameter names; [""] for the single-camera node."""
    return [name for name in values["cameras"].split(",") if name] or [""]


def build_pipeline(values: dict[str, Any], backend: Backend | None = None) -> tuple[Pipeline, FiniteGuard]:
    """The pipeline the parameters describe; UserError for a missing or unreadable model.

    ``backend`` replaces the one the parameters name (tests, or an application that already
    holds the model); it is wrapped in a FiniteGuard either way.
    """
    from mtl_perception.inference.factory import create_backend

    if backend is None:
        precision = None if values["precision"] == "auto" else values["precision"]
        backend = create_backend(
            values["backend"], values["model_path"] or None, values["device"], precision,
            batch=len(camera_names(values)),
        )
    guard = FiniteGuard(backend)
    pipeline = Pipeline(
        guard,
        grouping=values["grouping"],
        output_resolution=values["output_resolution"],
        color_alpha=values["semantic_color_alpha"],
        depth_range=(values["depth_color_min_m"], values["depth_color_max_m"]),
    )
    return pipeline, guard


@dataclass
class CameraInput:
    """One camera of the node: its topics, subscription, calibration, counters and publishers.

    The single-camera node has one, named "" (topics ``image``, ``camera_info`` and the outputs
    at the node's namespace); with ``cameras: front,left`` each camera's topics are under its
    name (``front/image`` -> ``front/semantic/labels``, ...).
    """

    name: str
    image_topic: str
    stats: FrameStats
    faults: FaultReporter
    output_pubs: dict[str, Any]
    info_pubs: dict[str, Any]
    reliability: str
    subscription: Subscription | None = None
    camera_info: CameraInfo | None = None
    camera_state: str = "training camera"
    reports_lost: bool = False  # the middleware reports images lost on the way (diagnostics)
    last_topics: list[str] = field(default_factory=list)

    def topic(self, relative: str) -> str:
        return f"{self.name}/{relative}" if self.name else relative


@dataclass
class _Prepared:
    """A camera's frame decoded and checked, ready for the batch."""

    camera: CameraInput
    frame: Frame
    image: np.ndarray
    order: str
    model: CameraModel | None
    topics: list[str]


@dataclass
class _Forwarded:
    """One round's frames through the network, for the publishing thread to finish."""

    prepared: list[_Prepared]
    batches: list[ForwardedBatch]
    finite: list[torch.Tensor]  # FiniteGuard's flags for these forwards
    forward_s: float


class PerceptionNode(Node):
    """Subscribes to ``image`` (and ``camera_info``), publishes the DESIGN.md section 4 topics;
    with ``cameras``, the same for each named camera, all through one model."""

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
        #: Done (with the exit status) when the node can no longer serve: ``main`` then exits.
        self.failure: Future = Future()
        steady = Clock(clock_type=ClockType.STEADY_TIME)

        self._out_qos = qos.profile(self._values["output_qos_reliability"], self._values["output_qos_depth"])
        self._diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", qos.DIAGNOSTICS)
        transport = self._values["input_transport"]
        self._image_type = CompressedImage if transport == "compressed" else Image
        names = camera_names(self._values)
        if len(set(names)) < len(names):
            raise UserError(f"cameras: a camera is named twice in {self._values['cameras']!r}")
        self._cameras = {name: self._open_camera(name, transport) for name in names}
        self._frames = LatestFrames(self._cameras)
        if self._values["image_qos_reliability"] == "auto":
            self._adapt_image_qos(subscribe=False)
            self.create_timer(1.0, self._adapt_image_qos, clock=steady)
        for camera in self._cameras.values():
            camera.subscription = self._subscribe_image(camera)
        self.create_timer(1.0, self._publish_diagnostics, clock=steady)

        self._info = {
            "model": self._values["model_path"] or "default (package)",
            "input": ", ".join(f"{c.image_topic} ({transport})" for c in self._cameras.values()),
            **(facts or {}),
        }
        self._outbox: Outbox[_Forwarded] = Outbox()
        self._worker = threading.Thread(
            target=self._guarded, args=("inference worker", self._work, backend), name="inference", daemon=True
        )
        self._publisher = threading.Thread(
            target=self._guarded, args=("publishing thread", self._publish_all), name="publishing", daemon=True
        )
        self._worker.start()
        self._publisher.start()

    def _open_camera(self, name: str, transport: str) -> CameraInput:
        """Publishers, counters and the camera_info subscription of one camera."""
        prefix = f"{name}/" if name else ""
        stats = FrameStats()
        wanted = self._values["image_qos_reliability"]
        camera = CameraInput(
            name=name,
            image_topic=self.resolve_topic_name(prefix + "image") + ("/compressed" if transport == "compressed" else ""),
            stats=stats,
            faults=FaultReporter(self.get_logger(), stats),
            output_pubs={
                t: self._output_publisher(MESSAGE_CLASSES[o.msgtype], prefix + t) for t, o in OUTPUT_TOPICS.items()
            },
            info_pubs={t: self._output_publisher(CameraInfo, prefix + t) for t in CAMERA_INFOS},
            reliability="reliable" if wanted == "auto" else wanted,
        )
        self.create_subscription(
            CameraInfo, prefix + "camera_info", lambda msg: setattr(camera, "camera_info", msg), qos.CAMERA_INFO
        )
        return camera

    # ------------------------------------------------------------------ executor thread
    def _output_publisher(self, msg_type: type, topic: str) -> Publisher:
        """An output publisher, without rclpy's per-publisher event handlers (``compat.without_event_handlers``)."""
        return self.create_publisher(msg_type, topic, self._out_qos, event_callbacks=without_event_handlers())

    def _subscribe_image(self, camera: CameraInput) -> Subscription:
        profile = qos.profile(camera.reliability, self._values["image_qos_depth"])
        subscription, camera.reports_lost = subscribe_with_message_times(
            self, self._image_type, camera.image_topic,
            lambda msg, _received_ns, sent_ns: self._on_image(camera, msg, sent_ns), profile,
            on_lost=camera.stats.lost,
        )
        return subscription

    def _adapt_image_qos(self, subscribe: bool = True) -> None:
        """Follow the reliability of each camera's writers (``image_qos_reliability: auto``)."""
        for camera in self._cameras.values():
            infos = self.get_publishers_info_by_topic(camera.image_topic)
            wanted = qos.adapt_reliability((i.qos_profile.reliability for i in infos), camera.reliability)
            if wanted == camera.reliability:
                continue
            self.get_logger().info(f"{camera.image_topic}: image writers are {wanted}: subscribing {wanted}")
            camera.reliability = wanted
            if subscribe:
                self.destroy_subscription(camera.subscription)
                camera.subscription = self._subscribe_image(camera)

    def _on_image(self, camera: CameraInput, msg: Image | CompressedImage, sent_ns: int | None) -> None:
        """Store the newest frame, and how long it took from the writer's write to this callback:
        the image's transport cost (47-48 ms for 1024x2048 from a driver with Fast DDS's default
        segment, 6.6-6.7 with the node's: ``fastdds_command.py``). Not to rmw's reception time:
        that is 1-2 ms after the write with either segment, so it misses where the time goes
        (docs/measurements.md)."""
        transport_s = None if not sent_ns else (time.time_ns() - sent_ns) * 1e-9
        camera.stats.received(self._frames.put(camera.name, msg), transport_s)

    def _on_parameters(self, changes: dict[str, Any]) -> None:
        self._values.update(changes)
        if self._pipeline is None:
            return  # still loading: the pipeline takes the values when it is built
        self._pipeline.color_alpha = self._values["semantic_color_alpha"]
        self._pipeline.depth_range = (self._values["depth_color_min_m"], self._values["depth_color_max_m"])
        self._pipeline.output_resolution = self._values["output_resolution"]

    def _publish_diagnostics(self) -> None:
        """One status per camera (the single camera's is "<node>: pipeline", as it always was)."""
        stamp = self.get_clock().now().to_msg()
        loading = "" if self._pipeline is not None else (
            f"loading model {self._info['model']} ({time.monotonic() - self._loading_since:.0f} s)"
        )
        report = DiagnosticArray()
        for camera in self._cameras.values():
            info = {
                **self._info,
                "input": camera.image_topic,
                "outputs": ",".join(camera.last_topics) or "none (no subscribers)",
                "camera": camera.camera_state,
                "output_resolution": self._values["output_resolution"],
                "image_qos": f"{camera.reliability}, keep last {self._values['image_qos_depth']}",
            }
            name = f"{self.get_name()}: {camera.name or 'pipeline'}"
            array = to_diagnostics(
                camera.stats.snapshot(), stamp, name, camera.image_topic, info, loading, camera.reports_lost
            )
            report.header = array.header
            report.status.extend(array.status)
        self._diagnostics.publish(report)

    # ------------------------------------------------------------------ inference thread
    def _guarded(self, what: str, body: Any, *args: Any) -> None:
        """Run a thread's ``body``; if it ends other than by ``stop``, fail loudly."""
        try:
            body(*args)
        except BaseException as exc:  # noqa: BLE001 - whatever stopped the thread must be reported
            if self.context.ok():
                message = f"{what} stopped: {type(exc).__name__}: {exc}"
                self._fail(f"{message}; exiting so that a supervisor can restart the node", 1, traceback.format_exc())
        finally:
            self._outbox.close()  # the other thread must not wait for this one

    def _work(self, backend: Backend | None) -> None:
        """The inference thread: load the model, then serve frames until ``stop``."""
        if self._load(backend):
            self._serve()

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
        if len(self._cameras) > 1:
            # What a round costs: one forward for every camera, or one per batch the model takes.
            self._info["batch"] = f"{len(self._cameras)} cameras, up to {pipeline.max_batch or 'all'} per forward"
            if pipeline.max_batch is not None and pipeline.max_batch < len(self._cameras):
                self.get_logger().warning(
                    f"this model takes {pipeline.max_batch} image(s) per forward: the {len(self._cameras)} cameras run in "
                    "several forwards per round (a checkpoint, an ONNX exported with --dynamic, or an engine built "
                    "with --max-batch for them runs them as one batch)"
                )
        self._pipeline = pipeline
        self._on_parameters({})  # values set while the model loaded
        qos_line = ", ".join(f"{c.image_topic} ({c.reliability})" for c in self._cameras.values())
        self.get_logger().info(
            f"ready: {self._info['backend']} on {qos_line} "
            f"(model loaded in {time.monotonic() - self._loading_since:.1f} s)"
        )
        return True

    def _serve(self) -> None:
        while True:
            frames = self._frames.take()
            if not frames:
                return  # stopped
            try:
                forwarded = self._infer(frames)
            except Exception as exc:  # noqa: BLE001 - a pipeline bug must not silently kill the worker
                if not self.context.ok():
                    return  # shutting down
                self._frame_failed(list(frames), exc)
                continue
            if forwarded is not None and not self._outbox.put(forwarded):
                return  # stopped

    def _frame_failed(self, names: list[str], exc: Exception) -> None:
        """An unexpected error on these cameras' frames: counted and logged per camera; serving goes on."""
        for name in names:
            camera = self._cameras[name]
            camera.faults(Fault.INTERNAL, f"{camera.image_topic}: frame failed: {type(exc).__name__}: {exc}")
        self.get_logger().debug(traceback.format_exc())

    def _fail(self, message: str, status: int, details: str = "") -> None:
        """The node cannot serve: ERROR in /diagnostics at once, exit ``status`` from ``main``."""
        for camera in self._cameras.values():
            camera.stats.failed(message)
        self.get_logger().fatal(message)
        if details:
            self.get_logger().debug(details)
        self._publish_diagnostics()
        self.failure.set_result(status)

    def _camera(self, camera: CameraInput, width: int, height: int) -> CameraModel | None:
        """camera_info's intrinsics for this image size; None = the model's training camera
        (also for a camera_info that ``camera_info_check`` refuses: warned and reported)."""
        info = camera.camera_info if self._values["use_camera_info"] else None
        if info is None:
            camera.camera_state = "training camera"
            return None
        use_baseline = self._values["use_camera_info_baseline"]
        reason = refusal(info, width, height, use_baseline)
        if reason is not None:
            camera.camera_state = f"training camera (camera_info refused: {reason})"
            camera.faults(Fault.CAMERA_INFO_REFUSED, f"camera_info refused: {reason}; using the training camera")
            return None
        camera.camera_state = "camera_info"
        return conv.camera_from_info(info, width, height, use_baseline=use_baseline)

    def _producible(self, camera: CameraInput, topics: list[str], model: CameraModel | None) -> list[str]:
        """The wanted topics this model and camera can produce; a throttled warning names the rest."""
        meta = self._pipeline.metadata
        has_fx = model is not None or meta.camera_fx is not None
        has_baseline = (model is not None and model.baseline is not None) or meta.camera_baseline is not None
        available = self._pipeline.available if has_fx and has_baseline else self._pipeline.available - DEPTH_OUTPUTS
        lost = [t for t in topics if not OUTPUT_TOPICS[t].needs <= available]
        if lost:
            camera.faults(
                Fault.OUTPUTS_UNAVAILABLE,
                f"not published: {', '.join(camera.topic(t) for t in lost)} (the model lacks the task, or metric "
                "depth lacks a camera: no camera_info with a baseline and no training camera recorded in the model)",
            )
        return [t for t in topics if t not in lost]

    def _prepare(self, camera: CameraInput, frame: Frame) -> _Prepared | None:
        """Decode and check one camera's frame; None when nobody listens to it."""
        topics = [t for t, pub in camera.output_pubs.items() if pub.get_subscription_count() > 0]
        if not topics:
            camera.last_topics = []
            camera.stats.skipped()
            return None
        image, order = self._decode(frame.msg)
        model = self._camera(camera, image.shape[1], image.shape[0])
        topics = camera.last_topics = self._producible(camera, topics, model)
        if not topics:
            camera.stats.skipped()
            return None
        return _Prepared(camera, frame, image, order, model, topics)

    def _infer(self, frames: dict[str, Frame]) -> _Forwarded | None:
        """One round: every camera's newest frame through one batch (None: nothing to publish)."""
        ready = []
        for name, frame in frames.items():
            camera = self._cameras[name]
            try:
                prepared = self._prepare(camera, frame)
            except FrameError as exc:
                camera.faults(exc.fault, f"{camera.image_topic}: {exc}")
                continue
            if prepared is not None:
                ready.append(prepared)
        if not ready:
            return None
        needed, small = (frozenset().union(*parts) for parts in zip(*(pipeline_outputs(p.topics) for p in ready)))
        started = time.monotonic()
        try:
            batches = self._pipeline.forward_many(
                [CameraFrame(p.image, p.order, p.model) for p in ready], outputs=needed, network_outputs=small
            )
        except (UserError, FrameError) as exc:
            self._guard.take()  # the flags of a refused round's forwards, if any ran
            self._round_refused(ready, exc)
            return None
        return _Forwarded(ready, batches, self._guard.take(), time.monotonic() - started)

    def _round_refused(self, ready: list[_Prepared], exc: UserError | FrameError) -> None:
        """A refused round (bad input, non-finite output): a fault on each of its cameras."""
        fault = exc.fault if isinstance(exc, FrameError) else Fault.REFUSED_INPUT
        for p in ready:
            p.camera.faults(fault, f"{p.camera.image_topic}: {exc}")

    # ------------------------------------------------------------------ publishing thread
    def _publish_all(self) -> None:
        """The publishing thread: each round post-processed, then its frames' outputs published
        in the order the frames were computed (the next round is in the network meanwhile)."""
        while (forwarded := self._outbox.take()) is not None:
            started = time.monotonic()
            try:
                results = self._pipeline.finish(forwarded.batches)
                FiniteGuard.require_finite(forwarded.finite)
            except FrameError as exc:
                self._round_refused(forwarded.prepared, exc)
                continue
            except Exception as exc:  # noqa: BLE001 - a post-processing bug must not silently stop publishing
                if not self.context.ok():
                    return  # shutting down
                self._frame_failed([p.camera.name for p in forwarded.prepared], exc)
                continue
            pipeline_s = forwarded.forward_s + time.monotonic() - started
            for prepared, result in zip(forwarded.prepared, results):
                try:
                    self._publish(prepared, result, pipeline_s)
                except Exception as exc:  # noqa: BLE001 - an encoder bug must not silently stop publishing
                    if not self.context.ok():
                        return  # shutting down: publishers are gone
                    self._frame_failed([prepared.camera.name], exc)

    def _publish(self, p: _Prepared, result: PipelineResult, pipeline_s: float) -> None:
        """One camera's frame: every wanted output encoded, then all published."""
        clock = self.get_clock()
        header = p.frame.msg.header
        # Encode everything before publishing anything: a frame goes out whole or not at all.
        messages = [(p.camera.output_pubs[t], self._encode(t, result, header)) for t in p.topics]
        messages += self._camera_infos(p.camera, result, header)
        for pub, msg in messages:
            pub.publish(msg)
        stamp_age = clock.now() - Time.from_msg(header.stamp, clock_type=clock.clock_type)
        p.camera.stats.published(time.monotonic() - p.frame.received, stamp_age.nanoseconds * 1e-9, pipeline_s)

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

    def _camera_infos(self, camera: CameraInput, result: PipelineResult, header: Header) -> list[tuple[Any, CameraInfo]]:
        """The camera_info of each image group somebody listens to, at the images' resolution."""
        wanted = [pub for pub in camera.info_pubs.values() if pub.get_subscription_count() > 0]
        if not wanted:
            return []
        source = camera.camera_info if self._values["use_camera_info"] else None
        msg = conv.to_camera_info(info_at(result.camera, source), header)
        return [(pub, msg) for pub in wanted]

    def _encode(self, topic: str, result: PipelineResult, header: Header) -> Any:
        """The message of one output topic."""
        if topic in IMAGE_TOPICS:
            image_topic = IMAGE_TOPICS[topic]
            return conv.numpy_to_image(getattr(result, image_topic.field), image_topic.encoding, header)
        if topic in NETWORK_TOPICS:
            result = result.network or result
        camera = result.camera
        if topic == "depth/disparity":
            return conv.to_disparity_image(result.disparity, camera.fx, camera.baseline, header)
        if topic == "instance/markers":
            return conv.to_instance_markers(result.instance_list, result.instances, result.depth, camera, header)
        if topic == "points":
            points = conv.depth_to_points(
                result.depth, camera, result.image, result.semantic, result.instances,
                stride=self._values["points_stride"], max_depth=self._values["points_max_depth_m"],
            )
            return conv.to_point_cloud(points, header)
        raise KeyError(topic)

    # ------------------------------------------------------------------ lifetime
    @property
    def values(self) -> dict[str, Any]:
        """The current parameter values."""
        return dict(self._values)

    def stop(self) -> None:
        """Stop both threads after the frame in progress (a model still loading is not waited
        for: a TensorRT build may take minutes, and Ctrl-C must not)."""
        self._frames.close()
        self._outbox.close()
        self._worker.join(timeout=None if self._pipeline is not None else 2.0)
        self._publisher.join()


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
