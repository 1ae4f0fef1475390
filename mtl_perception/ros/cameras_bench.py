"""``mtl-perception bench cameras``: one node for N cameras against N single-camera nodes.

Both set-ups get the same camera stream in the same run: every camera publishes the same
rendered street scene at ``--rate`` Hz (faster than the model, so both run at their limit;
latest frame wins drops the rest) with every output of every camera subscribed. Reported:
aggregate output frames/s (the frames whose last subscribed output arrived, summed over the
cameras), frames/s per camera, and the resident memory of the node process(es) at the end
(VmRSS from /proc, summed for the N processes), and the CPU cost of one executor wake-up of
either node (``executor_wakeup``: per message, whatever the message is; with the share of a
core that takes at the cameras' rate). Targets (issue 17): aggregate frames/s of the
one node >= 1.0x the N nodes', memory <= 0.5x. On a GPU the batch of N cameras in one forward
pass should be the faster path; on this CPU one process per camera can use idle cores.
"""
from __future__ import annotations

import argparse
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from mtl_perception.benchmarks.base import Benchmark, bench_model, parse_sizes
from mtl_perception.process import ChildProcess


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, help="checkpoint or ONNX model (default: shipped, else random)")
    parser.add_argument("--backend", default="auto", help="node backend (default: auto)")
    parser.add_argument("--cameras", type=int, default=4, help="number of cameras (default: 4)")
    parser.add_argument("--size", default="256x512", help="camera size HxW (default: 256x512)")
    parser.add_argument("--rate", type=float, default=30.0, help="frames/s each camera publishes (default: 30)")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per set-up (default: 20)")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def _node_command(model: Path, backend: str, namespace: str, cameras: str = "") -> list[str]:
    command = [
        sys.executable, "-m", "mtl_perception.ros.node", "--ros-args", "-r", f"__ns:={namespace}",
        "-p", f"model_path:={model}", "-p", f"backend:={backend}",
    ]
    return command + (["-p", f"cameras:={cameras}"] if cameras else [])


def _measure(node: Any, image_msg: Any, prefixes: list[str], procs: list[ChildProcess], args: argparse.Namespace) -> dict:
    """Publish to every camera at the rate; frames/s whose every subscribed output arrived."""
    from sensor_msgs.msg import Image

    from mtl_perception.errors import UserError
    from mtl_perception.ros.node_bench import output_types
    from mtl_perception.ros.qos import profile

    outputs = output_types()
    arrived: dict[str, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
    lock = threading.Lock()

    def record(prefix: str, topic: str):
        def callback(msg: Any) -> None:
            header = msg.markers[0].header if hasattr(msg, "markers") else msg.header
            with lock:
                arrived[prefix][header.stamp.sec * 10**9 + header.stamp.nanosec].add(topic)
        return callback

    qos = profile("reliable", 5)
    subs = [node.create_subscription(kind, f"{p}/{t}", record(p, t), qos) for p in prefixes for t, kind in outputs.items()]
    pubs = {p: node.create_publisher(Image, f"{p}/image", qos) for p in prefixes}

    def complete(prefix: str) -> set[int]:
        with lock:
            return {s for s, topics in arrived[prefix].items() if len(topics) == len(outputs)}

    def send(stamp: int) -> None:
        image_msg.header.stamp.sec, image_msg.header.stamp.nanosec = divmod(stamp, 10**9)
        for pub in pubs.values():
            pub.publish(image_msg)

    stamp, deadline = 1, time.monotonic() + 300
    while not all(complete(p) for p in prefixes):  # start-up, model load, discovery
        for proc in procs:
            proc.check_alive("a perception node")
        if time.monotonic() > deadline:
            raise UserError("the nodes did not serve every camera within 300 s")
        send(stamp)
        stamp += 1
        time.sleep(0.2)
    first = stamp
    start = time.monotonic()
    while time.monotonic() - start < args.seconds:
        send(stamp)
        stamp += 1
        time.sleep(max(0.0, start + (stamp - first) / args.rate - time.monotonic()))
    time.sleep(2.0)  # the last frames in flight
    per_camera = {p: len({s for s in complete(p) if s >= first}) / args.seconds for p in prefixes}
    rss = sum(_rss_mb(proc.proc.pid) for proc in procs)
    for sub in subs:
        node.destroy_subscription(sub)
    for pub in pubs.values():
        node.destroy_publisher(pub)
    return {"aggregate_fps": sum(per_camera.values()), "fps_per_camera": per_camera, "rss_mb": rss,
            "frames_sent_per_camera": stamp - first}


def _wakeup_ms(model: Path, backend: str, cameras: str, env: dict[str, str], spins: int = 2000) -> dict[str, float]:
    """CPU ms of one executor wake-up with a node for ``cameras`` in its wait set, in this process.

    The Python executor rebuilds its wait set from every entity of the node on each wake-up,
    and the node wakes for every image and camera_info: this is its per-message cost, apart
    from the work the message itself brings (wake-ups here find nothing ready).
    """
    import os
    from unittest import mock

    from mtl_perception.inference.cache import CACHE_ENV

    # The run's model cache, not the user's, for the node's whole life: its worker thread reads
    # the variable when it loads the model, after the constructor has returned.
    with mock.patch.dict(os.environ, {CACHE_ENV: env[CACHE_ENV]}):
        return _time_wakeups(model, backend, cameras, spins)


def _time_wakeups(model: Path, backend: str, cameras: str, spins: int) -> dict[str, float]:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from mtl_perception.ros.node import PerceptionNode

    context = rclpy.Context()
    rclpy.init(context=context)
    overrides = [Parameter("model_path", value=str(model)), Parameter("backend", value=backend),
                 Parameter("cameras", value=cameras)]
    node = PerceptionNode(namespace="/bench_wakeup", context=context, parameter_overrides=overrides)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        for _ in range(spins // 10):
            executor.spin_once(timeout_sec=0)
        started = time.thread_time()  # this thread only: the node loads its model meanwhile
        for _ in range(spins):
            executor.spin_once(timeout_sec=0)
        ms = (time.thread_time() - started) / spins * 1e3
        return {"cpu_ms": ms, "waitables": len(list(node.waitables))}
    finally:
        executor.shutdown(timeout_sec=2)
        node.stop()
        node.destroy_node()
        context.try_shutdown()


def _run(args: argparse.Namespace) -> dict[str, Any]:
    import os
    import tempfile

    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from std_msgs.msg import Header

    from mtl_perception.data.synth.generate import render_image
    from mtl_perception.errors import UserError
    from mtl_perception.ros import conversions as conv
    from mtl_perception.ros.middleware import configure_camera_process
    from mtl_perception.ros.node_bench import _ros_env

    if args.cameras < 1 or args.rate <= 0 or args.seconds <= 0:
        raise UserError("--cameras must be >= 1, --rate and --seconds > 0")
    (h, w), = parse_sizes(args.size, "--size")
    middleware = configure_camera_process()  # every camera's writer shares this one participant's segment
    env = _ros_env()
    os.environ.update({k: env[k] for k in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE")})
    names = [f"cam{i}" for i in range(args.cameras)]
    image_msg = conv.numpy_to_image(render_image("val", 0, h, w, seed=0).rgb, "rgb8", Header(frame_id="camera"))
    results: dict[str, Any] = {
        "cameras": args.cameras, "size": f"{h}x{w}", "rate_hz": args.rate, "seconds": args.seconds,
        "middleware": middleware,
    }
    with tempfile.TemporaryDirectory(prefix="mtl_cameras_bench_") as tmp:
        env.setdefault("MTL_PERCEPTION_CACHE", str(Path(tmp) / "cache"))
        model, results["model"] = bench_model(args.model, Path(tmp))
        context = rclpy.Context()
        rclpy.init(context=context)
        node = rclpy.create_node("cameras_bench", context=context)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        spinner = threading.Thread(target=executor.spin, daemon=True)
        spinner.start()
        try:
            setups = {
                "one_node": ([_node_command(model, args.backend, "/bench_rig", ",".join(names))],
                             [f"/bench_rig/{n}" for n in names]),
                "one_node_per_camera": ([_node_command(model, args.backend, f"/bench_{n}") for n in names],
                                        [f"/bench_{n}" for n in names]),
            }
            for setup, (commands, prefixes) in setups.items():
                procs = [ChildProcess(c, env) for c in commands]
                try:
                    results[setup] = _measure(node, image_msg, prefixes, procs, args)
                finally:
                    for proc in procs:
                        proc.stop()
                print(f"{setup}: {results[setup]['aggregate_fps']:.2f} frames/s in all, "
                      f"{results[setup]['rss_mb']:.0f} MB resident", flush=True)
            wakeups = {"one_node": _wakeup_ms(model, args.backend, ",".join(names), env),
                       "one_camera_node": _wakeup_ms(model, args.backend, "", env)}
            for entry, count in (("one_node", args.cameras), ("one_camera_node", 1)):
                # an image and a camera_info per camera and frame
                wakeups[entry]["core_share_at_rate"] = wakeups[entry]["cpu_ms"] * 2 * args.rate * count / 1e3
            results["executor_wakeup"] = wakeups
        finally:
            executor.shutdown(timeout_sec=2)
            node.destroy_node()
            context.try_shutdown()
    one, many = results["one_node"], results["one_node_per_camera"]
    results["fps_ratio_one_node_to_per_camera"] = one["aggregate_fps"] / max(many["aggregate_fps"], 1e-9)
    results["rss_ratio_one_node_to_per_camera"] = one["rss_mb"] / max(many["rss_mb"], 1e-9)
    return results


BENCHMARK = Benchmark(
    help="cameras: one node for N cameras vs N single-camera nodes (aggregate frames/s, resident memory)",
    add_arguments=_add_arguments,
    run=_run,
)
