"""``mtl-perception bench node``: what ROS adds on top of the pipeline, measured end to end.

For each camera size (larger than the network's, as on a vehicle) and each output resolution
(``--output-resolutions``: the node's default ``network`` and ``input``), four latencies are
measured in turn within every frame, so that a change of machine load hits them alike and
their ratios come from one run:

- ``forward_ms``: the bare ``backend.forward`` on a ready input tensor, in this process;
- ``pipeline_ms`` (and ``pipeline_stages_ms``): the pipeline in this process on the camera
  image, with every output the node computes when everything is subscribed;
- ``end_to_end_ms``: the node in its own process (as ``ros2 run`` starts it); this process
  publishes a rendered street image, subscribes to every output topic (camera_infos included)
  and measures publish -> last output received by its middleware (the reception timestamps
  rmw reports), and publish -> last output handed to its Python callbacks
  (``end_to_end_python_callback_ms``, which adds this bench's own rclpy executor cost);
- ``relay_floor_ms``: the floor, a bare rclpy relay process that on every image publishes
  messages of the same types and sizes as the node's outputs (one frame of them, recorded)
  with no computation: what ROS itself costs for these messages.

``ratio_node_to_forward``, ``ratio_node_to_floor`` and ``ratio_floor_to_forward`` are taken
from the medians; ``ratio_p50`` is node / pipeline (the adapter's cost: decode, markers,
points, message filling, DDS both ways). Frames are sent one at a time (the next after all
outputs of the last arrived), so no queueing hides in the numbers.

Then the rate a camera gets (``stream``): this process publishes frames at twice the rate the
one-at-a-time latency allows, for ``--stream-seconds``, and counts the frames whose outputs all
arrived. The node's two threads (inference, publishing) overlap, so its frame period can be
shorter than its latency; ``ratio_node_period_to_forward`` compares that period with the bare
forward pass, the frame rate a camera gets from the node against what the network alone allows.

Also measured: filling ``msg.data`` of the three colour images of a frame from numpy in the
ways one could (list, bytes, memoryview, ``array.frombytes``) and publishing them; and, with
``--qos``, how many rgb8 frames (``--qos-sizes``, 512x1024 by default) at 30 Hz arrive between
two processes under each reliability / depth pairing, with Fast DDS as shipped and with the
node's shared-memory profile (the measurements behind ``qos.py`` and ``middleware.py``), and
with only the writer or only the reader configured (why a camera driver needs the profile
too: ``fastdds_command.py``).

Model: ``--model``, else the shipped default, else a random ResNet-18 OS16 at 256x512 with
the Cityscapes camera (the JSON says which).
"""
from __future__ import annotations

import argparse
import array
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mtl_perception.benchmarks.base import Benchmark, bench_model, parse_sizes
from mtl_perception.process import ChildProcess
from mtl_perception.ros.middleware import configure_camera_process, configure_fastdds

START_TIMEOUT_S = 300.0
FRAME_TIMEOUT_S = 30.0
QOS_PAIRS = [("reliable", 5, "reliable", 5), ("reliable", 1, "reliable", 1), ("reliable", 5, "reliable", 1),
             ("reliable", 5, "best_effort", 5), ("best_effort", 5, "best_effort", 5)]


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, help="checkpoint or ONNX model (default: shipped, else random)")
    parser.add_argument("--backend", default="auto", help="node backend (default: auto)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda, for the node and the bare forward alike")
    parser.add_argument(
        "--sizes", default="256x512,512x1024,1024x2048",
        help="camera sizes HxW; the network runs at the model's own (default: 256x512,512x1024,1024x2048)",
    )
    parser.add_argument(
        "--output-resolutions", default="network,input",
        help="comma list of the node's output_resolution values to measure (default: network,input)",
    )
    parser.add_argument("--frames", type=int, default=20, help="timed frames per size (default: 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed frames first (default: 3)")
    parser.add_argument(
        "--stream-seconds", type=float, default=6.0,
        help="seconds of frames at twice the node's one-at-a-time rate, for its frame rate (default: 6; 0: skip)",
    )
    parser.add_argument(
        "--qos", action="store_true", help="also measure delivery per QoS pairing and Fast DDS set-up (about 3 min)"
    )
    parser.add_argument("--qos-frames", type=int, default=150, help="frames per QoS pairing (default: 150)")
    parser.add_argument(
        "--qos-sizes", default="512x1024", help="image sizes HxW for --qos, rgb8 at 30 Hz (default: 512x1024)"
    )


def _ros_versions() -> dict[str, str]:
    """rclpy's and Fast DDS's versions where pip installed them (the PyPI wheels), and ROS_DISTRO."""
    from importlib import metadata

    versions = {"ros_distro": os.environ.get("ROS_DISTRO", "")}
    for key, dist in (("rclpy", "ros-rclpy"), ("fast_dds", "ros-fastdds"), ("fast_dds", "ros-fastrtps")):
        try:
            versions.setdefault(key, metadata.version(dist))
        except metadata.PackageNotFoundError:
            pass
    return versions


def _ros_env() -> dict[str, str]:
    """This run's own DDS domain on loopback, so other ROS processes neither see nor disturb it."""
    env = dict(os.environ)
    env.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    return env


def _ms(values: list[float]) -> dict[str, float]:
    return {"p50": statistics.median(values), "min": min(values), "max": max(values)}


# ---------------------------------------------------------------------- message filling
def _fill_options() -> dict[str, Callable[[np.ndarray], Any]]:
    def frombytes(a: np.ndarray) -> array.array:
        data = array.array("B")
        data.frombytes(a.reshape(-1))
        return data

    return {
        "list (arr.ravel().tolist())": lambda a: a.ravel().tolist(),
        "bytes (arr.tobytes())": lambda a: a.tobytes(),
        "memoryview (memoryview(arr).cast('B'))": lambda a: memoryview(a).cast("B"),
        "array.frombytes (used)": frombytes,
    }


def _publish_cost(node: Any, height: int, width: int, repeats: int = 5) -> dict[str, Any]:
    """ms to fill and to publish the three rgb8 colour images of one frame."""
    from sensor_msgs.msg import Image

    from mtl_perception.ros.qos import profile

    images = [np.random.default_rng(i).integers(0, 256, (height, width, 3), dtype=np.uint8) for i in range(3)]
    msgs = [Image(height=height, width=width, encoding="rgb8", step=3 * width) for _ in images]
    fill = {}
    for name, option in _fill_options().items():
        slow = name.startswith(("list", "memoryview"))
        times = []
        for _ in range(1 if slow else repeats):
            t0 = time.perf_counter()
            for msg, image in zip(msgs, images):
                msg.data = option(image)
            times.append((time.perf_counter() - t0) * 1e3)
        fill[name] = min(times)
    pub = node.create_publisher(Image, "/bench/publish_cost", profile("reliable", 5))
    node.create_subscription(Image, "/bench/publish_cost", lambda _: None, profile("reliable", 5))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for msg in msgs:
            pub.publish(msg)
        times.append((time.perf_counter() - t0) * 1e3)
    return {"fill_three_rgb8_ms": fill, "publish_three_rgb8_ms": min(times)}


# ---------------------------------------------------------------------- end to end
def output_types() -> dict[str, type]:
    """Every topic the node publishes per frame (images, clouds, markers, camera_infos) and its type."""
    from mtl_perception.inference.output_topics import CAMERA_INFO, CAMERA_INFOS, OUTPUT_TOPICS
    from mtl_perception.ros.node import MESSAGE_CLASSES

    names = {**{topic: o.msgtype for topic, o in OUTPUT_TOPICS.items()}, **{topic: CAMERA_INFO for topic in CAMERA_INFOS}}
    return {topic: MESSAGE_CLASSES[name] for topic, name in names.items()}


def _header_of(msg: Any) -> Any:
    # A MarkerArray has no header of its own; its first marker (DELETEALL) carries the frame's.
    return msg.markers[0].header if hasattr(msg, "markers") else msg.header


class _Collector:
    """Arrival times of every output topic under ``prefix``, keyed by the header stamp of the frame.

    Two clocks per message: ``received`` is when this process's middleware received it (the
    reception timestamp rmw reports, system time in ns; on Humble, whose rclpy does not pass
    it, the callback's time), ``delivered`` when rclpy's executor
    handed it to the Python callback (system time in ns). Their difference is this bench's own
    Python executor cost per message (in the JSON), which a C++ subscriber such as RViz does
    not pay; both are reported. The last message of each topic is kept (the relay's payload).
    """

    def __init__(self, node: Any, prefix: str = "") -> None:
        from diagnostic_msgs.msg import DiagnosticArray

        from mtl_perception.ros.compat import subscribe_with_message_times
        from mtl_perception.ros.qos import DIAGNOSTICS, profile

        self.arrivals: dict[int, dict[str, tuple[int, int]]] = {}
        self.last: dict[str, Any] = {}
        self.diagnostics: dict[str, str] = {}
        self.topics = list(output_types())
        for topic, kind in output_types().items():
            subscribe_with_message_times(
                node, kind, f"{prefix}/{topic}", self._callback(topic), profile("reliable", 5)
            )
        if not prefix:
            node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, DIAGNOSTICS)

    def _callback(self, topic: str) -> Callable[[Any, int, int | None], None]:
        def on_message(msg: Any, received_ns: int, _sent_ns: int | None) -> None:
            header = _header_of(msg)
            stamp = header.stamp.sec * 10**9 + header.stamp.nanosec
            self.arrivals.setdefault(stamp, {})[topic] = (received_ns, time.time_ns())
            self.last[topic] = msg

        return on_message

    def _on_diagnostics(self, msg: Any) -> None:
        for status in msg.status:
            values = {kv.key: kv.value for kv in status.values}
            if values.get("input", "").startswith("/bench/image"):
                self.diagnostics = values

    def complete(self, stamp: int) -> bool:
        return len(self.arrivals.get(stamp, {})) == len(self.topics)


def _send(
    executor: Any, pub: Any, image: np.ndarray, stamp: int, collector: _Collector, timeout: float
) -> tuple[float, float] | None:
    """Publish one frame; seconds until its last output was received and delivered (None on timeout)."""
    from std_msgs.msg import Header

    from mtl_perception.ros.conversions import numpy_to_image

    header = Header(frame_id="camera_optical_frame")
    header.stamp.sec, header.stamp.nanosec = divmod(stamp, 10**9)
    msg = numpy_to_image(image, "rgb8", header)
    start, t0 = time.monotonic(), time.time_ns()
    pub.publish(msg)
    while time.monotonic() - start < timeout:
        executor.spin_once(timeout_sec=0.1)  # returns at the first message: no polling cost
        if collector.complete(stamp):
            received, delivered = zip(*collector.arrivals[stamp].values())
            return (max(received) - t0) * 1e-9, (max(delivered) - t0) * 1e-9
    return None


def _stream(
    executor: Any, pub: Any, image: np.ndarray, stamp: int, collector: _Collector, rate_hz: float, seconds: float
) -> dict[str, Any]:
    """Publish frames at ``rate_hz`` for ``seconds``; the frames whose outputs all arrived, per second.

    The rate comes from the reception times of the completed frames' last outputs (first to
    last), so start-up and the drain after the last frame do not dilute it.
    """
    from std_msgs.msg import Header

    from mtl_perception.ros.conversions import numpy_to_image

    header = Header(frame_id="camera_optical_frame")
    stamps, start = [], time.monotonic()
    while (now := time.monotonic()) < start + seconds:
        due = start + len(stamps) / rate_hz
        if now >= due:
            header.stamp.sec, header.stamp.nanosec = divmod(stamp + len(stamps), 10**9)
            pub.publish(numpy_to_image(image, "rgb8", header))
            stamps.append(stamp + len(stamps))
        executor.spin_once(timeout_sec=max(0.0, min(due - now, 0.05)))
    drain = time.monotonic() + FRAME_TIMEOUT_S
    while time.monotonic() < drain and not collector.complete(stamps[-1]):
        executor.spin_once(timeout_sec=0.05)  # the last frame is the newest: the node always takes it
    done = sorted(max(r for r, _ in collector.arrivals[s].values()) for s in stamps if collector.complete(s))
    fps = (len(done) - 1) / ((done[-1] - done[0]) * 1e-9) if len(done) > 2 else float("nan")
    return {"sent": len(stamps), "sent_hz": rate_hz, "completed": len(done), "node_fps": fps}


def _until_flowing(executor: Any, pub: Any, image: np.ndarray, collector: _Collector, child: ChildProcess,
                   stamp: int, what: str) -> int:
    """Resend frames until one frame's outputs all arrive (discovery, start-up); the next stamp."""
    from mtl_perception.errors import UserError

    first, deadline = stamp, time.monotonic() + START_TIMEOUT_S
    while not any(collector.complete(s) for s in range(first, stamp + 1)):
        child.check_alive(what)
        if time.monotonic() > deadline:
            raise UserError(f"{what} did not produce outputs within {START_TIMEOUT_S:.0f} s; its last output:\n{child.output()}")
        _send(executor, pub, image, stamp, collector, timeout=2.0)
        stamp += 1
    return stamp + 1


def _relay(payload: Path, image_topic: str, prefix: str) -> None:
    """Child process: the floor. On every image, publish the stored messages of one node frame
    (same types and sizes) under ``prefix`` with the image's header; no computation at all."""
    import pickle

    import rclpy
    from rclpy.node import Node
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import Image

    from mtl_perception.ros.qos import profile

    configure_fastdds()
    rclpy.init()
    node = Node("relay_floor")
    types = output_types()
    stored = pickle.loads(payload.read_bytes())
    messages = [(topic, deserialize_message(raw, types[topic])) for topic, raw in stored.items()]
    pubs = {topic: node.create_publisher(types[topic], f"{prefix}/{topic}", profile("reliable", 5)) for topic in stored}

    def on_image(image: Image) -> None:
        for topic, msg in messages:
            if hasattr(msg, "markers"):
                for marker in msg.markers:
                    marker.header = image.header
            else:
                msg.header = image.header
                if hasattr(msg, "image"):
                    msg.image.header = image.header
            pubs[topic].publish(msg)

    node.create_subscription(Image, image_topic, on_image, profile("reliable", 5))
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        rclpy.try_shutdown()


def _end_to_end(
    args: argparse.Namespace, model: Path, size: tuple[int, int], resolution: str, env: dict[str, str],
    workdir: Path,
) -> dict[str, Any]:
    """One camera size and output resolution: bare forward, pipeline stages, node, relay floor.

    The four are measured in turn within every frame, so a change of machine load hits all
    of them alike and the ratios come from one run.
    """
    import pickle

    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import Image

    from mtl_perception.data.synth.generate import render_image
    from mtl_perception.errors import UserError
    from mtl_perception.inference.factory import create_backend
    from mtl_perception.inference.pipeline import Pipeline
    from mtl_perception.inference.output_topics import OUTPUT_TOPICS, pipeline_outputs
    from mtl_perception.ros.qos import profile

    h, w = size
    tag = f"{h}x{w}_{resolution}"
    image = render_image("val", 0, h, w, seed=0).rgb
    command = [
        sys.executable, "-m", "mtl_perception.ros.node", "--ros-args", "-r", "__node:=mtl_perception",
        "-p", f"model_path:={model}", "-p", f"backend:={args.backend}", "-p", f"device:={args.device}",
        "-p", f"output_resolution:={resolution}",
        "-r", "image:=/bench/image",
    ]
    # The in-process pipeline first: it fills the model cache (an ONNX export) the node then reuses.
    pipeline = Pipeline(create_backend(args.backend, model, args.device), output_resolution=resolution)
    outputs, network_outputs = pipeline_outputs(list(OUTPUT_TOPICS))
    node_proc = ChildProcess(command, env)
    relay_proc = None
    context = rclpy.Context()
    rclpy.init(context=context)
    node = Node("node_bench", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        collector = _Collector(node)
        pub = node.create_publisher(Image, "/bench/image", profile("reliable", 5))
        stamp = _until_flowing(executor, pub, image, collector, node_proc, 1, "the node")
        payload = workdir / f"relay_{tag}.pickle"
        payload.write_bytes(pickle.dumps({t: serialize_message(m) for t, m in collector.last.items()}))
        relay_proc = ChildProcess(
            [sys.executable, "-m", __name__, "--relay", str(payload), "/bench/relay_image", "/relay"], env
        )
        relay = _Collector(node, prefix="/relay")
        relay_pub = node.create_publisher(Image, "/bench/relay_image", profile("reliable", 5))
        stamp = _until_flowing(executor, relay_pub, image, relay, relay_proc, stamp, "the relay")
        x = pipeline.preprocess(image)
        forward, e2e, delivered, floor, pipe, stages = [], [], [], [], [], []
        for i in range(args.warmup + args.frames):
            t0 = time.perf_counter()
            pipeline.backend.forward(x)
            t1 = time.perf_counter()
            result = pipeline(image, camera=None, outputs=outputs, network_outputs=network_outputs)
            t2 = time.perf_counter()
            latency = _send(executor, pub, image, stamp, collector, FRAME_TIMEOUT_S)
            relayed = _send(executor, relay_pub, image, stamp + 1, relay, FRAME_TIMEOUT_S)
            stamp += 2
            if latency is None or relayed is None:
                raise UserError(f"frame {i}: outputs did not all arrive within {FRAME_TIMEOUT_S:.0f} s")
            if i >= args.warmup:
                forward.append((t1 - t0) * 1e3)
                pipe.append((t2 - t1) * 1e3)
                stages.append(result.timings)
                e2e.append(latency[0] * 1e3)
                delivered.append(latency[1] * 1e3)
                floor.append(relayed[0] * 1e3)
        end = time.monotonic() + 1.5  # one more diagnostics report covering the timed frames
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
        med = {k: statistics.median(v) for k, v in
               {"forward": forward, "pipeline": pipe, "e2e": e2e, "delivered": delivered, "floor": floor}.items()}
        stream = (
            _stream(executor, pub, image, stamp, collector, 2e3 / med["e2e"], args.stream_seconds)
            if args.stream_seconds > 0 else {"node_fps": float("nan")}
        )
        out_bytes = sum(len(serialize_message(m)) for m in collector.last.values())
        return {
            "size": f"{h}x{w}",
            "camera": f"{h}x{w}",
            "network": "x".join(map(str, pipeline.network_size)),
            "output_resolution": resolution,
            "output_bytes_per_frame": out_bytes,
            "forward_ms": _ms(forward),
            "pipeline_ms": _ms(pipe),
            "pipeline_stages_ms": {k: statistics.median(s[k] for s in stages) for k in stages[0]},
            "end_to_end_ms": _ms(e2e),
            "end_to_end_python_callback_ms": _ms(delivered),
            "relay_floor_ms": _ms(floor),
            "ratio_node_to_forward": med["e2e"] / med["forward"],
            "ratio_node_to_floor": med["e2e"] / med["floor"],
            "ratio_floor_to_forward": med["floor"] / med["forward"],
            "ratio_pipeline_to_forward": med["pipeline"] / med["forward"],
            "ratio_p50": med["e2e"] / med["pipeline"],
            "ratio_python_callback_p50": med["delivered"] / med["pipeline"],
            "ratio_per_frame_p50": statistics.median(a / b for a, b in zip(e2e, pipe)),
            "stream": stream,
            "forward_fps": 1e3 / med["forward"],
            "ratio_node_period_to_forward": 1e3 / stream["node_fps"] / med["forward"],
            "node_receive_to_publish_p50_ms": float(collector.diagnostics.get("latency_receive_to_publish_p50_ms", "nan")),
            "node_pipeline_p50_ms": float(collector.diagnostics.get("pipeline_p50_ms", "nan")),
            "node_image_transport_p50_ms": float(collector.diagnostics.get("latency_transport_p50_ms", "nan")),
            "publish_cost": _publish_cost(node, h, w),
        }
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)
        node_proc.stop()
        if relay_proc is not None:
            relay_proc.stop()


def _resolutions(text: str) -> list[str]:
    from mtl_perception.errors import UserError

    values = [v.strip() for v in text.split(",")]
    if not values or any(v not in ("network", "input") for v in values):
        raise UserError(f"--output-resolutions: expected a comma list of network, input; got {text!r}")
    return values


def _table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| camera | outputs at | forward ms | pipeline ms | node ms | relay floor ms | node / forward "
        "| node / floor | floor / forward | node frames/s | node period / forward |",
        "|" + "---|" * 11,
    ]
    for r in rows:
        lines.append(
            f"| {r['camera']} | {r['output_resolution']} ({r['network'] if r['output_resolution'] == 'network' else r['camera']}) "
            f"| {r['forward_ms']['p50']:.1f} | {r['pipeline_ms']['p50']:.1f} | {r['end_to_end_ms']['p50']:.1f} "
            f"| {r['relay_floor_ms']['p50']:.1f} | {r['ratio_node_to_forward']:.2f} | {r['ratio_node_to_floor']:.2f} "
            f"| {r['ratio_floor_to_forward']:.2f} | {r['stream']['node_fps']:.1f} | {r['ratio_node_period_to_forward']:.2f} |"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------- QoS delivery
def _qos_reader(reliability: str, depth: int, seconds: float) -> None:
    """Child process: count frames on /bench/qos; print 'received N p50_ms p95_ms'."""
    import rclpy
    from rclpy.node import Node
    from sensor_msgs.msg import Image

    from mtl_perception.ros.qos import profile

    rclpy.init()
    node = Node("qos_reader")
    latencies: list[float] = []

    def on_image(msg: Image) -> None:
        latencies.append(time.time() - (msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9))

    node.create_subscription(Image, "/bench/qos", on_image, profile(reliability, depth))
    print("ready", flush=True)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)
    p = np.percentile(np.array(latencies) * 1e3, [50, 95]) if latencies else [float("nan")] * 2
    print(f"received {len(latencies)} {p[0]:.1f} {p[1]:.1f}", flush=True)
    rclpy.shutdown()


def _qos_writer(reliability: str, depth: int, frames: int, rate: float, height: int, width: int) -> None:
    """Child process: publish ``frames`` rgb8 images at ``rate`` Hz, stamped with wall time."""
    import rclpy
    from rclpy.node import Node
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from mtl_perception.ros.conversions import numpy_to_image
    from mtl_perception.ros.qos import profile

    rclpy.init()
    node = Node("qos_writer")
    pub = node.create_publisher(Image, "/bench/qos", profile(reliability, depth))
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    deadline = time.monotonic() + 10.0
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # let discovery finish both ways before the first frame
    t0 = time.monotonic()
    for i in range(frames):
        header = Header(frame_id="bench")
        now = time.time()
        header.stamp.sec, header.stamp.nanosec = int(now), int((now % 1) * 1e9)
        pub.publish(numpy_to_image(image, "rgb8", header))
        time.sleep(max(0.0, t0 + (i + 1) / rate - time.monotonic()))
    time.sleep(1.0)  # reliable repairs of the last frames
    rclpy.shutdown()


def _qos_delivery(frames: int, env: dict[str, str], size: tuple[int, int] = (512, 1024), rate: float = 30.0) -> list[dict]:
    """Frames received per reliability / depth pairing, with Fast DDS as shipped and as the node
    sets it; then, for the node's own pairing, with only one side configured: a sample travels
    through the writer's segment, so a camera driver as shipped costs the node its profile."""
    from mtl_perception.ros.middleware import PROFILE_ENVS

    rows = []
    shipped = {k: v for k, v in env.items() if k not in PROFILE_ENVS.values()}
    configured = dict(shipped)
    configure_fastdds(configured)
    node_pair = [("reliable", 5, "reliable", 5)]
    transports = [  # (name, writer's env, reader's env, pairings)
        ("fastdds default (512 KiB shm segment)", shipped, shipped, QOS_PAIRS),
        ("node's profile (32 MiB shm segment)", configured, configured, QOS_PAIRS),
        ("writer as shipped, reader with the node's profile", shipped, configured, node_pair),
        ("writer with the node's profile, reader as shipped", configured, shipped, node_pair),
    ]
    for transport, writer_env, reader_env, pairs in transports:
        for writer, writer_depth, reader, reader_depth in pairs:
            seconds = frames / rate + 8.0
            me = [sys.executable, "-m", __name__]
            reader_proc = subprocess.Popen(
                [*me, "--qos-reader", reader, str(reader_depth), str(seconds)], env=reader_env, stdout=subprocess.PIPE, text=True
            )
            assert reader_proc.stdout.readline().strip() == "ready"
            writer_args = [writer, str(writer_depth), str(frames), str(rate), str(size[0]), str(size[1])]
            subprocess.run([*me, "--qos-writer", *writer_args], env=writer_env, check=True, timeout=seconds + 30)
            out = reader_proc.communicate(timeout=seconds + 30)[0].split()
            rows.append({
                "transport": transport, "writer": f"{writer}/{writer_depth}", "reader": f"{reader}/{reader_depth}",
                "received": int(out[-3]), "sent": frames,
                "latency_p50_ms": float(out[-2]), "latency_p95_ms": float(out[-1]),
            })
            print(rows[-1], flush=True)
    return rows


def _run(args: argparse.Namespace) -> dict[str, Any]:
    from mtl_perception.errors import UserError

    if args.frames < 1 or args.warmup < 0 or args.stream_seconds < 0:
        raise UserError("--frames must be >= 1, --warmup and --stream-seconds >= 0")
    qos_sizes = parse_sizes(args.qos_sizes, "--qos-sizes") if args.qos else []
    middleware = configure_camera_process()  # the node sets its own
    env = _ros_env()
    os.environ.update({k: env[k] for k in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE")})
    results: dict[str, Any] = {"ros_domain_id": int(env["ROS_DOMAIN_ID"]), "middleware": middleware, **_ros_versions()}
    with tempfile.TemporaryDirectory(prefix="mtl_node_bench_") as tmp:
        env.setdefault("MTL_PERCEPTION_CACHE", str(Path(tmp) / "cache"))
        os.environ.setdefault("MTL_PERCEPTION_CACHE", env["MTL_PERCEPTION_CACHE"])
        model, results["model"] = bench_model(args.model, Path(tmp))
        results["sizes"] = []
        for resolution in _resolutions(args.output_resolutions):
            for size in parse_sizes(args.sizes):
                row = _end_to_end(args, model, size, resolution, env, Path(tmp))
                print(
                    f"{row['size']} outputs at {resolution}: forward {row['forward_ms']['p50']:.1f} ms, pipeline "
                    f"{row['pipeline_ms']['p50']:.1f}, node {row['end_to_end_ms']['p50']:.1f}, relay floor "
                    f"{row['relay_floor_ms']['p50']:.1f}; node/forward {row['ratio_node_to_forward']:.2f}, "
                    f"node/floor {row['ratio_node_to_floor']:.2f}; {row['stream']['node_fps']:.1f} frames/s "
                    f"(period/forward {row['ratio_node_period_to_forward']:.2f})",
                    flush=True,
                )
                results["sizes"].append(row)
        results["table"] = _table(results["sizes"])
        print(results["table"])
    for h, w in qos_sizes:
        results[f"qos_{h}x{w}_rgb8_30hz"] = _qos_delivery(args.qos_frames, env, (h, w))
    return results


BENCHMARK = Benchmark(
    help="node: end-to-end ROS latency vs pipeline latency; message filling; QoS delivery (--qos)",
    add_arguments=_add_arguments,
    run=_run,
)

if __name__ == "__main__" and sys.argv[1:2] == ["--relay"]:
    _relay(Path(sys.argv[2]), sys.argv[3], sys.argv[4])
elif __name__ == "__main__" and sys.argv[1:2] == ["--qos-reader"]:
    _qos_reader(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
elif __name__ == "__main__" and sys.argv[1:2] == ["--qos-writer"]:
    _qos_writer(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7]))
