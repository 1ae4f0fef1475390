"""``mtl-perception bench node``: what ROS adds on top of the pipeline, measured end to end.

For each camera size: the node runs in its own process (as ``ros2 run`` starts it); this
process publishes a rendered street image, subscribes to every output topic and measures
publish -> last output received by its middleware (``end_to_end_ms``, ``ratio_p50``; the
reception timestamps rmw reports), and publish -> last output handed to its Python callbacks
(``end_to_end_python_callback_ms``, which adds this bench's own rclpy executor cost per
message). Between two such frames it runs the same pipeline
in-process on the same image with every output the node computes, so both latencies see
the same machine load; the ratio end-to-end / pipeline is the cost of the adapter (decode,
markers, points, message filling, DDS both ways). Frames are sent one at a time (the next
after all outputs of the last arrived), so no queueing hides in the numbers.

Also measured: filling ``msg.data`` of the three colour images of a frame from numpy in the
ways one could (list, bytes, memoryview, ``array.frombytes``) and publishing them; and, with
``--qos``, how many 512x1024 rgb8 frames at 30 Hz arrive between two processes under each
reliability / depth pairing, with Fast DDS as shipped and with the node's shared-memory
profile (the measurements behind ``qos.py`` and ``middleware.py``).

Model: ``--model``, else the shipped default, else a random ResNet-18 OS16 at 256x512 with
the Cityscapes camera (the JSON says which).
"""
from __future__ import annotations

import argparse
import array
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mtl_perception.bench import Benchmark, bench_model, parse_sizes
from mtl_perception.ros.middleware import configure_fastdds

START_TIMEOUT_S = 300.0
FRAME_TIMEOUT_S = 30.0
QOS_PAIRS = [("reliable", 5, "reliable", 5), ("reliable", 1, "reliable", 1), ("reliable", 5, "reliable", 1),
             ("reliable", 5, "best_effort", 5), ("best_effort", 5, "best_effort", 5)]


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, help="checkpoint or ONNX model (default: shipped, else random)")
    parser.add_argument("--backend", default="auto", help="node backend (default: auto)")
    parser.add_argument("--sizes", default="256x512,512x1024", help="camera sizes HxW (default: 256x512,512x1024)")
    parser.add_argument("--frames", type=int, default=20, help="timed frames per size (default: 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed frames first (default: 3)")
    parser.add_argument(
        "--qos", action="store_true", help="also measure delivery per QoS pairing and Fast DDS set-up (about 3 min)"
    )
    parser.add_argument("--qos-frames", type=int, default=150, help="frames per QoS pairing (default: 150)")


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
class _Collector:
    """Arrival times of every output topic, keyed by the header stamp of the frame.

    Two clocks per message: ``received`` is when this process's middleware received it (the
    reception timestamp rmw reports, system time in ns; on Humble, whose rclpy does not pass
    it, the callback's time), ``delivered`` when rclpy's executor
    handed it to the Python callback (system time in ns). Their difference is this bench's own
    Python executor cost (~0.35 ms per message here), which a C++ subscriber such as RViz does
    not pay; both are reported.
    """

    def __init__(self, node: Any) -> None:
        from diagnostic_msgs.msg import DiagnosticArray

        from mtl_perception.ros.compat import subscribe_with_reception_time
        from mtl_perception.ros.node import OUTPUTS
        from mtl_perception.ros.qos import DIAGNOSTICS, profile

        self.arrivals: dict[int, dict[str, tuple[int, int]]] = {}
        self.diagnostics: dict[str, str] = {}
        self.topics = list(OUTPUTS)
        for topic, (kind, _) in OUTPUTS.items():
            subscribe_with_reception_time(node, kind, topic, self._callback(topic), profile("reliable", 5))
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, DIAGNOSTICS)

    def _callback(self, topic: str) -> Callable[[Any, int], None]:
        def on_message(msg: Any, received_ns: int) -> None:
            # A MarkerArray has no header of its own; its first marker (DELETEALL) carries the frame's.
            header = msg.markers[0].header if hasattr(msg, "markers") else msg.header
            stamp = header.stamp.sec * 10**9 + header.stamp.nanosec
            self.arrivals.setdefault(stamp, {})[topic] = (received_ns, time.time_ns())

        return on_message

    def _on_diagnostics(self, msg: Any) -> None:
        self.diagnostics = {kv.key: kv.value for kv in msg.status[0].values}

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


def _end_to_end(
    args: argparse.Namespace, model: Path, size: tuple[int, int], env: dict[str, str], workdir: Path
) -> dict[str, Any]:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from sensor_msgs.msg import Image

    from mtl_perception.data.synth.generate import render_image
    from mtl_perception.errors import UserError
    from mtl_perception.inference.factory import create_backend
    from mtl_perception.inference.pipeline import Pipeline
    from mtl_perception.ros.node import OUTPUTS
    from mtl_perception.ros.qos import profile

    h, w = size
    image = render_image("val", 0, h, w, seed=0).rgb
    command = [
        sys.executable, "-m", "mtl_perception.ros.node", "--ros-args", "-r", "__node:=mtl_perception",
        "-p", f"model_path:={model}", "-p", f"backend:={args.backend}", "-r", "image:=/bench/image",
    ]
    # The in-process pipeline first: it fills the model cache (an ONNX export) the node then reuses.
    pipeline = Pipeline(create_backend(args.backend, model, "auto"))
    log_path = workdir / f"node_{h}x{w}.log"
    with open(log_path, "w") as log:
        node_proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    outputs = frozenset().union(*(needs for _, needs in OUTPUTS.values()))
    context = rclpy.Context()
    rclpy.init(context=context)
    node = Node("node_bench", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        collector = _Collector(node)
        pub = node.create_publisher(Image, "/bench/image", profile("reliable", 5))
        # Until outputs flow (discovery, model start-up), frames are resent: the node drops
        # those it is too busy for, so wait for any frame to complete, not a given one.
        stamp, deadline = 1, time.monotonic() + START_TIMEOUT_S
        while not any(collector.complete(s) for s in range(1, stamp + 1)):
            if node_proc.poll() is not None or time.monotonic() > deadline:
                raise UserError(
                    f"the node did not produce outputs (exit code {node_proc.poll()}); its log: {log_path.read_text()[-2000:]}"
                )
            _send(executor, pub, image, stamp, collector, timeout=2.0)
            stamp += 1
        e2e, delivered, pipe = [], [], []
        for i in range(args.warmup + args.frames):
            t0 = time.perf_counter()
            pipeline(image, camera=None, outputs=outputs)
            pipeline_s = time.perf_counter() - t0
            stamp += 1
            latency = _send(executor, pub, image, stamp, collector, FRAME_TIMEOUT_S)
            if latency is None:
                raise UserError(f"frame {i}: outputs did not all arrive within {FRAME_TIMEOUT_S:.0f} s")
            if i >= args.warmup:
                e2e.append(latency[0] * 1e3)
                delivered.append(latency[1] * 1e3)
                pipe.append(pipeline_s * 1e3)
        end = time.monotonic() + 1.5  # one more diagnostics report covering the timed frames
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
        ratios = [a / b for a, b in zip(e2e, pipe)]
        return {
            "size": f"{h}x{w}",
            "end_to_end_ms": _ms(e2e),
            "end_to_end_python_callback_ms": _ms(delivered),
            "pipeline_ms": _ms(pipe),
            "ratio_p50": statistics.median(e2e) / statistics.median(pipe),
            "ratio_python_callback_p50": statistics.median(delivered) / statistics.median(pipe),
            "ratio_per_frame_p50": statistics.median(ratios),
            "node_receive_to_publish_p50_ms": float(collector.diagnostics.get("latency_receive_to_publish_p50_ms", "nan")),
            "node_pipeline_p50_ms": float(collector.diagnostics.get("pipeline_p50_ms", "nan")),
            "publish_cost": _publish_cost(node, h, w),
        }
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)
        node_proc.send_signal(signal.SIGINT)
        try:
            node_proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            node_proc.kill()


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
    """Frames received per reliability / depth pairing, with Fast DDS as shipped and as the node sets it."""
    from mtl_perception.ros.middleware import PROFILE_ENVS

    rows = []
    shipped = {k: v for k, v in env.items() if k not in PROFILE_ENVS.values()}
    configured = dict(shipped)
    configure_fastdds(configured)
    transports = {"fastdds default (512 KiB shm segment)": shipped, "node's profile (32 MiB shm segment)": configured}
    for transport, child_env in transports.items():
        for writer, writer_depth, reader, reader_depth in QOS_PAIRS:
            seconds = frames / rate + 8.0
            me = [sys.executable, "-m", __name__]
            reader_proc = subprocess.Popen(
                [*me, "--qos-reader", reader, str(reader_depth), str(seconds)], env=child_env, stdout=subprocess.PIPE, text=True
            )
            assert reader_proc.stdout.readline().strip() == "ready"
            writer_args = [writer, str(writer_depth), str(frames), str(rate), str(size[0]), str(size[1])]
            subprocess.run([*me, "--qos-writer", *writer_args], env=child_env, check=True, timeout=seconds + 30)
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

    if args.frames < 1 or args.warmup < 0:
        raise UserError("--frames must be >= 1 and --warmup >= 0")
    # This process plays the camera: give its writer the segment a camera driver sending
    # megabyte images should have (see middleware.py); the node sets its own.
    middleware = configure_fastdds().note
    env = _ros_env()
    os.environ.update({k: env[k] for k in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE")})
    results: dict[str, Any] = {"ros_domain_id": int(env["ROS_DOMAIN_ID"]), "middleware": middleware, **_ros_versions()}
    with tempfile.TemporaryDirectory(prefix="mtl_node_bench_") as tmp:
        env.setdefault("MTL_PERCEPTION_CACHE", str(Path(tmp) / "cache"))
        os.environ.setdefault("MTL_PERCEPTION_CACHE", env["MTL_PERCEPTION_CACHE"])
        model, results["model"] = bench_model(args.model, Path(tmp))
        results["sizes"] = []
        for size in parse_sizes(args.sizes):
            row = _end_to_end(args, model, size, env, Path(tmp))
            print(
                f"{row['size']}: end-to-end {row['end_to_end_ms']['p50']:.1f} ms, pipeline "
                f"{row['pipeline_ms']['p50']:.1f} ms, ratio {row['ratio_p50']:.2f}",
                flush=True,
            )
            results["sizes"].append(row)
    if args.qos:
        results["qos_512x1024_rgb8_30hz"] = _qos_delivery(args.qos_frames, env)
    return results


BENCHMARK = Benchmark(
    help="node: end-to-end ROS latency vs pipeline latency; message filling; QoS delivery (--qos)",
    add_arguments=_add_arguments,
    run=_run,
)

if __name__ == "__main__" and sys.argv[1:2] == ["--qos-reader"]:
    _qos_reader(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
elif __name__ == "__main__" and sys.argv[1:2] == ["--qos-writer"]:
    _qos_writer(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7]))
