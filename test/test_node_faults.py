"""The node against everything a frame, a camera_info or a user can throw at it (issue 16).

In-process nodes on the harness's executor (as test_node.py's NaN check does) share one
backend, so each case costs a node, not a model load; command-line cases run the real entry
point. Every wait is a condition wait with a generous timeout (the machine is shared).
"""
from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo

from inference_helpers import tiny_checkpoint
from mtl_perception.data.synth.generate import render_image
from mtl_perception.inference.backend import Backend
from mtl_perception.inference.output_topics import CAMERA_INFOS, OUTPUT_TOPICS
from mtl_perception.ros.node import PerceptionNode
from ros_domains import domain_id
from ros_harness import Harness
from test_node import BAD_FRAMES, BAD_PARAMETERS, H, W, _set

DOMAIN_ID = domain_id("node_faults")
ERROR, WARN, OK = b"\x02", b"\x01", b"\x00"


@pytest.fixture(scope="module")
def ros_env(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ROS_DOMAIN_ID", str(DOMAIN_ID))
        mp.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
        yield


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("model") / "tiny.pt")


@pytest.fixture(scope="module")
def backend(ros_env, model_path) -> Backend:
    from mtl_perception.inference.factory import create_backend

    return create_backend("auto", model_path, "auto")


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return render_image("val", 0, H, W, seed=0).rgb


@pytest.fixture(scope="module")
def harness(ros_env):
    h = Harness(DOMAIN_ID)
    yield h
    h.close()


class InProcess:
    """A PerceptionNode under ``/<namespace>`` on the harness's executor, with helpers."""

    def __init__(self, harness: Harness, namespace: str, backend: Backend, **overrides) -> None:
        self.harness, self.prefix = harness, f"/{namespace}"
        self.node = PerceptionNode(
            backend=backend, namespace=namespace, context=harness.context,
            parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()],
        )
        harness.executor.add_node(self.node)
        harness.prefix = self.prefix
        self.image_topic = f"{self.prefix}/image"

    def close(self) -> None:
        self.harness.executor.remove_node(self.node)
        self.node.stop()
        self.node.destroy_node()
        self.harness.prefix = ""

    def send(self, pixels: np.ndarray) -> int:
        return self.harness.send_image(pixels, topic=self.image_topic)

    def send_bad(self, msg) -> None:
        msg.header = self.harness.header()
        self.harness.publish(self.image_topic, msg)

    def send_info(self, info: CameraInfo) -> None:
        self.harness.send_camera_info(info, topic=f"{self.prefix}/camera_info")

    def reports(self, since: float = 0.0) -> list[dict]:
        return self.harness.diagnostics(self.image_topic, since)

    def wait_report(self, predicate, timeout: float = 30.0, since: float = 0.0) -> dict:
        """The first diagnostics report after ``since`` that satisfies ``predicate``."""
        found = self.harness.wait_for(lambda: [r for r in self.reports(since) if predicate(r)], timeout, period=0.1)
        assert found, f"no such report within {timeout:.0f} s; last: {(self.reports(since) or [None])[-1]}"
        return found[0]


@pytest.fixture
def in_process(harness, backend):
    made: list[InProcess] = []

    def make(namespace: str, inner: Backend | None = None, **overrides) -> InProcess:
        made.append(InProcess(harness, namespace, inner or backend, **overrides))
        return made[-1]

    yield make
    for node in made:
        node.close()


UNCALIBRATED = CameraInfo(width=W, height=H)  # K = 0: a driver without calibration


@pytest.mark.parametrize("order", ["warning first", "error first"])
def test_a_warning_and_an_error_in_either_order_leave_the_worker_serving(harness, in_process, image, order):
    """Issue 16, broken 1: rclpy refused two severities from one log call site, inside the
    worker's exception handler; the worker died (warning first) or the frame due a warning
    was rejected whole (error first)."""
    node = in_process(f"order_{order.split()[0]}")
    harness.subscribe(["semantic/labels"])
    harness.send_until(lambda: node.send(image), ["semantic/labels"], timeout=60)
    bad, _ = BAD_FRAMES["unknown encoding"]

    def warn() -> None:  # a frame with an unusable camera_info: warned, processed without it
        def refused() -> list:
            node.send_info(UNCALIBRATED)
            node.send(image)
            return [r for r in node.reports() if "camera_info refused: K is zero" in r["camera"]]

        assert harness.wait_for(refused, timeout=60, period=1.0)

    def fail() -> None:
        since = time.monotonic()
        node.send_bad(bad)
        node.wait_report(lambda r: r["level"] == ERROR, since=since)

    for step in (warn, fail) if order == "warning first" else (fail, warn):
        step()
    rejected = int(node.wait_report(lambda r: True, since=time.monotonic())["frames_rejected"])
    harness.send_until(lambda: node.send(image), ["semantic/labels"], timeout=30)
    last = node.wait_report(lambda r: True, since=time.monotonic())
    assert int(last["frames_rejected"]) == rejected == 1, last  # only the bad frame
    harness.unsubscribe(["semantic/labels"])


class WorkerKilled(BaseException):
    """Stands in for whatever could still escape the worker's handlers (not an Exception)."""


class KillsTheWorker(Backend):
    """The tiny model, except that a dark frame raises WorkerKilled inside the worker."""

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner.metadata, inner.device, inner.precision)
        self.inner, self.name = inner, inner.name

    def forward(self, x):
        if float(x.float().mean()) < -1.5:  # black pixels normalise to about -2
            raise WorkerKilled("injected")
        return self.inner.forward(x)


@pytest.mark.parametrize(("thread", "retain"), [("inference worker", True), ("publishing thread", False)])
def test_a_dead_thread_is_an_error_in_diagnostics_and_main_exits_non_zero(
    harness, backend, image, model_path, monkeypatch, capfd, thread, retain
):
    """The real entry point (``main``, in-process to reach its backend): a worker thread that
    stops (inference or publishing) is reported at ERROR level and ends the process with status
    1, never idles looking healthy. Also: ``retain_freed_memory: false`` leaves glibc's
    allocator alone."""
    from mtl_perception.ros import node as node_module
    from mtl_perception.ros.middleware import PROFILE_ENVS

    for name in PROFILE_ENVS.values():
        monkeypatch.setenv(name, "")
    retained: list[bool] = []
    monkeypatch.setattr(node_module, "retain_freed_memory", lambda: retained.append(True) or True)
    if thread == "inference worker":
        build = node_module.build_pipeline
        monkeypatch.setattr(node_module, "build_pipeline", lambda values, _=None: build(values, KillsTheWorker(backend)))
    else:
        publish = node_module.PerceptionNode._publish

        def killing_publish(self, prepared, result, pipeline_s):  # a dark frame raises WorkerKilled while publishing
            if float(prepared.image.mean()) < 1.0:
                raise WorkerKilled("injected")
            publish(self, prepared, result, pipeline_s)

        monkeypatch.setattr(node_module.PerceptionNode, "_publish", killing_publish)
    harness.subscribe(["/dead/semantic/labels"])
    stop = threading.Event()

    def camera() -> None:  # good frames until outputs flow, then dark ones
        give_up = time.monotonic() + 180
        while not stop.is_set():
            if time.monotonic() > give_up:  # main never returned: stop it as Ctrl-C would (status 0)
                os.kill(os.getpid(), signal.SIGINT)
                return
            dark = any(t >= since for t, _ in harness.messages["/dead/semantic/labels"])
            harness.send_image(np.zeros_like(image) if dark else image, topic="/dead/image")
            time.sleep(0.3)

    since = time.monotonic()
    feeder = threading.Thread(target=camera, daemon=True)
    feeder.start()
    try:
        status = node_module.main([
            "perception_node", "--ros-args", "-r", "__ns:=/dead", "-p", f"model_path:={model_path}",
            "-p", f"retain_freed_memory:={str(retain).lower()}",
        ])
    finally:
        stop.set()
        feeder.join()
    assert status == 1
    errors = harness.wait_for(
        lambda: [d for d in harness.diagnostics("/dead/image", since) if d["level"] == ERROR], timeout=10
    )
    assert errors and errors[-1]["message"].startswith(f"{thread} stopped: WorkerKilled: injected"), errors[-1]
    assert f"{thread} stopped" in "".join(capfd.readouterr())
    assert retained == ([True] if retain else [])
    harness.unsubscribe(["/dead/semantic/labels"])


# ---------------------------------------------------------------------------- start-up
def _fatal_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if "FATAL" in line]


@pytest.fixture(scope="module")
def onnx_model(backend, model_path) -> Path:
    from mtl_perception.inference.onnx_export import cached_onnx

    return cached_onnx(model_path)


def _with_metadata(source: Path, out: Path, graph=None, **changes) -> Path:
    """``source``'s metadata with ``changes`` (JSON values), on its own graph or on ``graph``."""
    import json

    import onnx

    model = onnx.load(source)
    props = {p.key: p.value for p in model.metadata_props}
    props.update({f"mtl_perception.{k}": json.dumps(v) for k, v in changes.items()})
    target = graph if graph is not None else model
    del target.metadata_props[:]
    for key, value in props.items():
        target.metadata_props.add(key=key, value=value)
    onnx.save(target, out)
    return out


def _foreign_graph():
    """An ONNX of someone else's: one float image in, one 'logits' tensor out."""
    from onnx import TensorProto, helper

    node = helper.make_node("Identity", ["x"], ["logits"])
    graph = helper.make_graph(
        [node], "foreign",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 64, 128])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3, 64, 128])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


MODEL_CASES = {
    "fx <= 0": (dict(camera_fx=-5.0), "training camera fx (--fx) must be a finite positive number (px), got -5.0"),
    "baseline 0": (dict(camera_baseline=0.0), "training camera baseline (--baseline) must be a finite positive"),
    "foreign graph": (dict(), "is not a model its metadata describes: outputs ['logits'] are not the metadata's tasks"),
}


@pytest.mark.parametrize("case", list(MODEL_CASES))
def test_a_model_with_impossible_metadata_or_a_foreign_graph_stops_start_up_in_one_line(
    ros_env, onnx_model, tmp_path, capfd, monkeypatch, case
):
    """Issue 16, broken 7 (node part) and the foreign-ONNX weak item: refused at start-up."""
    from mtl_perception.ros.middleware import PROFILE_ENVS
    from mtl_perception.ros.node import main

    for name in PROFILE_ENVS.values():
        monkeypatch.setenv(name, "")
    changes, expected = MODEL_CASES[case]
    graph = _foreign_graph() if case == "foreign graph" else None
    model = _with_metadata(onnx_model, tmp_path / "model.onnx", graph, **changes)
    assert main(["perception_node", "--ros-args", "-p", f"model_path:={model}"]) == 2
    out = "".join(capfd.readouterr())
    assert expected in out and "Traceback" not in out, out
    assert len(_fatal_lines(out)) == 1, out


def _bad_yaml(tmp_path: Path) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text("mtl_perception:\n  ros__parameters:\n    points_stride: [\n")
    return path


ARGUMENT_CASES = {  # --ros-args -> what the one line says
    "malformed params file": (lambda t: ["--params-file", str(_bad_yaml(t))], "is not valid YAML (line 4)"),
    "missing params file": (lambda t: ["--params-file", str(t / "none.yaml")], "params file not found"),
    "unknown flag": (lambda t: ["--bogus"], "unknown ROS argument '--bogus'"),
    "remap without target": (lambda t: ["-r", "image"], "-r 'image' needs the form name:=value"),
    "parameter without value": (lambda t: ["-p", "model_path"], "-p 'model_path' needs the form name:=value"),
    "flag without value": (lambda t: ["--params-file"], "ROS argument --params-file needs a value"),
}


@pytest.mark.parametrize("executable", ["perception_node", "mtl-perception node"])
def test_bad_ros_arguments_give_one_line_and_exit_2(ros_env, tmp_path, executable):
    """Issue 16, broken 6 (node part), through both console scripts."""
    import shutil
    import subprocess
    import sys

    command = [str(Path(sys.executable).parent / executable.split()[0]), *executable.split()[1:]]
    assert shutil.which(command[0])
    for case, (args, expected) in ARGUMENT_CASES.items():
        result = subprocess.run([*command, "--ros-args", *args(tmp_path)], capture_output=True, text=True, timeout=120)
        out = result.stdout + result.stderr
        assert result.returncode == 2, (case, out)
        assert expected in out and "Traceback" not in out, (case, out)
        assert len([line for line in out.splitlines() if line.strip()]) == 1, (case, out)


def test_unknown_parameters_are_warned_about_by_name_with_the_nearest_one(in_process, capfd):
    """A typo in a params file or a -p (here: the overrides rclpy hands the node) is named."""
    in_process("typo", modle_path="x.onnx", points_stride=3)
    out = "".join(capfd.readouterr())
    assert "parameter 'modle_path' is not a parameter of this node and is ignored; did you mean 'model_path'?" in out
    assert "points_stride" not in out and "use_sim_time" not in out, out


# ---------------------------------------------------------------------------- throttling
def test_the_bad_frame_log_is_throttled_by_kind_not_by_text(harness, in_process, capfd):
    """Issue 16, broken 5: undecodable JPEGs of varying sizes gave one ERROR line each."""
    node = in_process("throttle", input_transport="compressed")
    harness.subscribe(["semantic/labels"])  # the worker only decodes for a subscriber
    topic = f"{node.prefix}/image/compressed"
    started = time.monotonic()

    def counted() -> int:
        reports = node.reports(since=started)  # this node's, not an earlier run's of the same name
        return int(reports[-1]["faults_undecodable"]) if reports else 0

    sent = 0
    while counted() < 20 and time.monotonic() - started < 120:
        harness.send_compressed(b"\xff\xd8 not a jpeg " + bytes(sent), topic=topic)  # a new size each time
        sent += 1
        time.sleep(0.1)
    elapsed = time.monotonic() - started
    assert counted() >= 20, node.reports()[-1:]
    lines = [line for line in "".join(capfd.readouterr()).splitlines() if "cannot decode compressed image" in line]
    assert 1 <= len(lines) <= 2 + elapsed / 5.0, (len(lines), elapsed)
    assert "[undecodable]" in lines[0]
    harness.unsubscribe(["semantic/labels"])


# ---------------------------------------------------------------------------- camera_info
def _info(**changes) -> CameraInfo:
    """A calibrated camera_info of the test camera (W x H), with ``changes`` to K or the size."""
    k = [100.0, 0.0, (W - 1) / 2, 0.0, 100.0, (H - 1) / 2, 0.0, 0.0, 1.0]
    for index, value in changes.pop("k", {}).items():
        k[index] = value
    return CameraInfo(width=changes.get("width", W), height=changes.get("height", H), k=k)


BAD_INFOS = {  # camera_info -> the reason /diagnostics gives
    "K = 0": (CameraInfo(width=W, height=H), "K is zero"),
    "cx NaN": (_info(k={2: float("nan")}), "K is not finite"),
    "cy NaN": (_info(k={5: float("nan")}), "K is not finite"),
    "fx inf": (_info(k={0: float("inf")}), "K is not finite"),
    "fx negative": (_info(k={0: -100.0}), "focal length must be positive"),
    "fy zero": (_info(k={4: 0.0}), "focal length must be positive"),
    "fx implausible": (_info(k={0: 1e9}), "fx 1e+09 is implausible"),
    "another camera's size": (_info(width=4 * W, height=H), "does not have the aspect ratio"),
}
POINTS_TOPICS = ["points", "depth/image", "instance/markers"]


def test_unusable_camera_info_is_refused_for_the_training_camera_and_points_stay_valid(harness, in_process, image):
    """Issue 16, broken 4: NaN cx gave a cloud of NaN marked dense; fx = inf all-sky depth."""
    from mtl_perception.ros import conversions as conv

    node = in_process("bad_info")
    harness.subscribe(POINTS_TOPICS)
    for case, (info, reason) in BAD_INFOS.items():
        since = time.monotonic()

        def refused() -> list:
            node.send_info(info)
            node.send(image)
            return [r for r in node.reports(since) if "camera_info refused" in r["camera"] and reason in r["camera"]]

        report = harness.wait_for(refused, timeout=60, period=1.0)
        assert report and report[-1]["level"] in (WARN, OK), (case, node.reports()[-1:])
        _, msgs = harness.send_until(lambda: node.send(image), POINTS_TOPICS, timeout=30)
        cloud = np.frombuffer(msgs["points"].data, dtype=conv.POINT_DTYPE)
        xyz = np.stack([cloud["x"], cloud["y"], cloud["z"]])
        assert len(cloud) > 0 and np.isfinite(xyz).all() and msgs["points"].is_dense, case
        depth = conv.image_to_numpy(msgs["depth/image"])
        assert np.isfinite(depth).mean() > 0.5, case  # the training camera's depth, not all sky
        positions = [m.pose.position for m in msgs["instance/markers"].markers[1:]]
        assert all(np.isfinite([p.x, p.y, p.z]).all() for p in positions), case
    warned = int(node.reports()[-1]["faults_camera_info_refused"])
    assert warned >= len(BAD_INFOS) and int(node.reports()[-1]["frames_rejected"]) == 0
    harness.unsubscribe(POINTS_TOPICS)


def test_a_good_camera_info_is_used_after_a_refused_one(harness, in_process, image):
    node = in_process("good_info")
    harness.subscribe(["depth/image"])

    def in_use(info: CameraInfo, state: str):
        def check() -> list:
            node.send_info(info)
            node.send(image)
            return [r for r in node.reports(since) if r["camera"].startswith(state)]

        since = time.monotonic()
        return harness.wait_for(check, timeout=60, period=1.0)

    assert in_use(BAD_INFOS["cx NaN"][0], "training camera (camera_info refused")
    assert in_use(_info(), "camera_info")
    harness.unsubscribe(["depth/image"])


def test_is_dense_says_whether_every_point_is_finite():
    from mtl_perception.ros import conversions as conv
    from std_msgs.msg import Header

    points = np.zeros(3, dtype=conv.POINT_DTYPE)
    points["z"] = 1.0
    assert conv.to_point_cloud(points, Header()).is_dense
    points["x"][1] = np.nan
    assert not conv.to_point_cloud(points, Header()).is_dense


# ---------------------------------------------------------------------------- fault injection
GOOD_PARAMETERS = [("points_stride", 3), ("points_stride", 2), ("output_resolution", "input"),
                   ("output_resolution", "network"), ("use_camera_info", False), ("use_camera_info", True)]
REFUSED_PARAMETERS = [(name, value) for name, value, _ in BAD_PARAMETERS]
ALL_TOPICS = list(OUTPUT_TOPICS) + list(CAMERA_INFOS)
MAX_PIXELS = 2 * H * W  # small, so an oversized frame is cheap to send


def test_fault_injection_then_a_good_frame_gets_every_output_and_diagnostics_tell_the_truth(
    harness, in_process, backend, image
):
    """Issue 16, acceptance: a seeded random mix of good frames, bad frames of every kind,
    NaN from the model, oversized frames, bad and good camera_info and parameter changes
    (accepted and refused); then every output of a good frame arrives and /diagnostics
    accounts for every frame by kind."""
    from test_node import DarkFramesGiveNaN

    node = in_process("chaos", DarkFramesGiveNaN(backend), max_input_pixels=MAX_PIXELS)
    harness.subscribe(ALL_TOPICS)
    harness.send_until(lambda: node.send(image), ALL_TOPICS, timeout=60)
    start = node.wait_report(lambda r: True, since=time.monotonic())
    rng = random.Random(16)
    big = np.ascontiguousarray(np.tile(image, (2, 2, 1)))  # 4 x the pixels: above MAX_PIXELS
    frames = {"good": lambda: node.send(image), "nan": lambda: node.send(np.zeros_like(image)),
              "oversized": lambda: node.send(big)}
    frames.update({name: (lambda msg=msg: node.send_bad(msg)) for name, (msg, _) in BAD_FRAMES.items()})
    sent: Counter = Counter()
    for _ in range(90):
        event = rng.choice(["frame"] * 6 + ["info", "parameter"])
        if event == "frame":
            kind = rng.choice(list(frames))
            frames[kind]()
            sent[kind] += 1
        elif event == "info":
            node.send_info(rng.choice([_info()] + [info for info, _ in BAD_INFOS.values()]))
        else:
            (name, value), good = rng.choice([(p, True) for p in GOOD_PARAMETERS] + [(p, False) for p in REFUSED_PARAMETERS])
            assert _set(harness, name, value, node=f"{node.prefix}/mtl_perception")[0] is good, (name, value)
        time.sleep(rng.uniform(0.05, 0.3))
    total = sum(sent.values())
    # Afterwards: a usable camera_info, the default parameters, and a good frame gets everything.
    for name, value in [("output_resolution", "network"), ("use_camera_info", True), ("points_stride", 2)]:
        assert _set(harness, name, value, node=f"{node.prefix}/mtl_perception") == (True, "")
    node.send_info(_info())
    stamp, msgs = harness.send_until(lambda: node.send(image), ALL_TOPICS, timeout=60)
    assert set(msgs) == set(ALL_TOPICS)
    rejected_kinds = ("non_finite_output", "oversized", "unsupported_encoding", "bad_step", "bad_data_size",
                      "empty_image")

    def settled(r: dict) -> bool:
        """Every frame sent is received, and every frame received is accounted for: processed,
        rejected by kind, or dropped (superseded). Frames still in flight (in the node's slot,
        its inference or its publishing) settle within a round; a frame lost from the books
        never does, and the wait fails showing the last report."""
        received = int(r["frames_received"]) - int(start["frames_received"])
        books = sum(int(r[k]) - int(start[k]) for k in ("frames_processed", "frames_dropped", "frames_skipped"))
        books += sum(int(r[f"faults_{k}"]) - int(start[f"faults_{k}"]) for k in rejected_kinds)
        return received >= total and books == received

    report = node.wait_report(settled)

    def delta(key: str) -> int:
        return int(report[key]) - int(start[key])

    by_kind = {  # what each kind of bad frame is counted as
        "nan": "non_finite_output", "oversized": "oversized", "unknown encoding": "unsupported_encoding",
        "step too short": "bad_step", "size mismatch": "bad_data_size", "truncated data": "bad_data_size",
        "empty image": "empty_image",
    }
    counted = Counter()
    for kind, fault in by_kind.items():
        counted[fault] += sent[kind]
    for fault, n in counted.items():
        assert delta(f"faults_{fault}") <= n, (fault, delta(f"faults_{fault}"), n)
    errors = sum(delta(f"faults_{fault}") for fault in counted)
    assert delta("faults_internal") == 0 and delta("faults_refused_input") == 0, report
    assert delta("frames_rejected") == errors
    assert set(rejected_kinds) == set(counted)  # what ``settled`` books every frame under
    assert sum(counted.values()) - errors <= delta("frames_dropped"), report
    assert delta("faults_camera_info_refused") > 0
    since = time.monotonic()

    def healthy() -> list:  # frames keep coming, as from a camera, so the input is never stale
        node.send(image)
        return [r for r in node.reports(since) if r["level"] == OK]

    final = harness.wait_for(healthy, timeout=60, period=0.3)
    assert final, node.reports(since)[-1:]
    assert final[-1]["camera"] == "camera_info" and final[-1]["message"].endswith("Hz in"), final[-1]
    assert node.node.failure.done() is False
    harness.unsubscribe(ALL_TOPICS)


def test_an_unwritable_cache_folder_falls_back_to_a_temporary_one_and_says_so(ros_env, harness, model_path, image, tmp_path):
    """Issue 15 item 6: the real entry point with MTL_PERCEPTION_CACHE where no folder can be
    made (under a file: refused for root too, unlike a chmod)."""
    import subprocess
    import sys

    blocker = tmp_path / "a_file"
    blocker.write_text("")
    log = tmp_path / "node.log"
    env = {**os.environ, "MTL_PERCEPTION_CACHE": str(blocker / "cache")}
    command = [str(Path(sys.executable).parent / "perception_node"), "--ros-args", "-r", "__ns:=/ro_cache",
               "-p", f"model_path:={model_path}"]
    with open(log, "w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        harness.subscribe(["/ro_cache/semantic/labels"])
        harness.send_until(lambda: harness.send_image(image, topic="/ro_cache/image"), ["/ro_cache/semantic/labels"],
                           timeout=180)
        reports = harness.wait_for(lambda: harness.diagnostics("/ro_cache/image"), timeout=10)
        assert f"cache folder {blocker / 'cache'} is not writable" in reports[-1]["cache"], reports[-1]
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        harness.unsubscribe(["/ro_cache/semantic/labels"])
    text = log.read_text()
    assert "Traceback" not in text and "is not writable (Not a directory): using " in text, text
    fallback = Path(text.split("): using ")[1].split(" for this run")[0])
    assert not fallback.exists()  # removed at exit


# ---------------------------------------------------------------------------- start-up order
def test_diagnostics_say_loading_model_before_the_first_output(harness, backend, image, monkeypatch):
    """Issue 15 item 6: publishers and /diagnostics come up first; while the model loads
    (here a stand-in that takes 4 s, as an export or an engine build takes minutes on a
    Jetson) /diagnostics says so, then the node is ready."""
    from mtl_perception.ros import node as node_module

    build = node_module.build_pipeline

    def slow_build(values, _=None):
        time.sleep(4.0)
        return build(values, backend)

    monkeypatch.setattr(node_module, "build_pipeline", slow_build)
    harness.subscribe(["/slow/semantic/labels"])
    created = time.monotonic()
    node = PerceptionNode(namespace="slow", context=harness.context)
    harness.executor.add_node(node)
    try:
        loading = harness.wait_for(
            lambda: [r for r in harness.diagnostics("/slow/image", created) if r["message"].startswith("loading model")], 30
        )
        assert loading and loading[0]["level"] == WARN and loading[0]["message"].endswith(" s)"), loading
        harness.send_until(lambda: harness.send_image(image, topic="/slow/image"), ["/slow/semantic/labels"], 60)
        first_output = next(t for t, _ in harness.messages["/slow/semantic/labels"] if t >= created)
        first_loading = next(t for t, m in harness.messages["/diagnostics"] if t >= created and any(
            s.message.startswith("loading model") for s in m.status))
        assert first_loading < first_output
        def ready() -> list:
            harness.send_image(image, topic="/slow/image")
            return [r for r in harness.diagnostics("/slow/image", first_output) if r["level"] == OK and "backend" in r]

        ready = harness.wait_for(ready, timeout=30, period=0.3)
        assert ready, harness.diagnostics("/slow/image")[-1:]
    finally:
        harness.executor.remove_node(node)
        node.stop()
        node.destroy_node()
        harness.unsubscribe(["/slow/semantic/labels"])


# ---------------------------------------------------------------------------- reporter alone
def test_the_reporter_logs_errors_and_warnings_through_a_real_rclpy_logger_in_any_order(capfd):
    """rclpy refuses a second severity from one call site; the reporter has one per severity."""
    import rclpy.logging

    from mtl_perception.ros.diagnostics import FrameStats
    from mtl_perception.ros.faults import Fault, FaultReporter

    stats = FrameStats()
    report = FaultReporter(rclpy.logging.get_logger("reporter_test"), stats, period=0.0)
    for fault in [Fault.CAMERA_INFO_REFUSED, Fault.BAD_STEP, Fault.OUTPUTS_UNAVAILABLE, Fault.UNDECODABLE] * 2:
        report(fault, "message")
    snap = stats.snapshot()
    assert dict(snap.faults)["bad_step"] == 2 and dict(snap.faults)["camera_info_refused"] == 2
    assert snap.rejected == 4 and snap.warnings_since_last == 4
    out = "".join(capfd.readouterr())
    assert out.count("[WARN]") == 4 and out.count("[ERROR]") == 4, out


def test_skipped_frames_are_booked_and_an_idle_node_says_why_nothing_comes_out():
    from builtin_interfaces.msg import Time
    from diagnostic_msgs.msg import DiagnosticStatus

    from mtl_perception.ros.diagnostics import FrameStats, to_diagnostics

    now = [100.0]
    stats = FrameStats(window_s=5.0, clock=lambda: now[0])

    def status():
        return to_diagnostics(stats.snapshot(), Time(), "n", "/cam/image", {}).status[0]

    for _ in range(3):
        stats.received(replaced_unprocessed=False)
        stats.skipped()
    first = status()
    values = {kv.key: kv.value for kv in first.values}
    assert first.level == DiagnosticStatus.OK and "nothing computed: no output has a subscriber" in first.message
    assert (values["frames_received"], values["frames_skipped"], values["frames_processed"]) == ("3", "3", "0")
    stats.received(replaced_unprocessed=False)
    stats.published(0.01, 0.01, 0.005)  # somebody subscribed: a frame went out
    assert "Hz out of" in status().message
    now[0] += 10.0  # skipping long ago and nothing since: no longer "idle" but a stale camera
    assert "no image on /cam/image" in status().message


def test_image_transport_latency_is_reported_over_the_window_and_nan_where_unknown():
    """The images' writer -> node's callback time: what a camera driver's Fast DDS set-up costs."""
    from builtin_interfaces.msg import Time

    from mtl_perception.ros.diagnostics import FrameStats, to_diagnostics

    now = [0.0]
    stats = FrameStats(window_s=5.0, clock=lambda: now[0])

    def values():
        return {kv.key: kv.value for kv in to_diagnostics(stats.snapshot(), Time(), "n", "/cam/image", {}).status[0].values}

    stats.received(False)  # Humble: no source time
    assert values()["latency_transport_p50_ms"] == "nan"
    for transport_s in [0.060] * 10:
        stats.received(False, transport_s)
    now[0] += 6.0  # those leave the window
    for transport_s in [0.004] * 9 + [0.050]:
        stats.received(False, transport_s)
    v = values()
    assert (v["latency_transport_p50_ms"], v["latency_transport_p95_ms"]) == ("4.0", "29.3")


def test_the_reporter_throttles_per_kind_and_says_how_many_it_held_back():
    from mtl_perception.ros.diagnostics import FrameStats
    from mtl_perception.ros.faults import Fault, FaultReporter

    class Lines:
        def __init__(self) -> None:
            self.lines: list[str] = []

        def error(self, line: str) -> None:
            self.lines.append(line)

        warning = error

    now = [0.0]
    logger = Lines()
    report = FaultReporter(logger, FrameStats(), period=5.0, clock=lambda: now[0])
    for i in range(20):  # 20 messages of one kind, all different, in 2 s
        now[0] = i * 0.1
        report(Fault.UNDECODABLE, f"cannot decode compressed image ({i} bytes)")
    report(Fault.BAD_STEP, "step 1 is shorter than one row")  # another kind has its own budget
    now[0] = 6.0
    report(Fault.UNDECODABLE, "cannot decode compressed image (99 bytes)")
    assert logger.lines == [
        "[undecodable] cannot decode compressed image (0 bytes)",
        "[bad_step] step 1 is shorter than one row",
        "[undecodable] cannot decode compressed image (99 bytes) (19 more since the last report)",
    ]


def test_an_oversized_compressed_frame_is_refused_from_its_header(harness, in_process, image):
    import cv2

    from mtl_perception.ros import conversions as conv
    from sensor_msgs.msg import CompressedImage

    big = cv2.imencode(".jpg", np.tile(image, (3, 3, 1)))[1].tobytes()
    assert conv.compressed_size(CompressedImage(format="jpeg", data=big)) == (3 * W, 3 * H)
    assert conv.compressed_size(CompressedImage(format="jpeg", data=b"not an image")) is None
    node = in_process("big_jpeg", input_transport="compressed", max_input_pixels=2 * H * W)
    harness.subscribe(["semantic/labels"])
    topic = f"{node.prefix}/image/compressed"
    small = cv2.imencode(".jpg", image)[1].tobytes()
    harness.send_until(lambda: harness.send_compressed(small, topic=topic), ["semantic/labels"], timeout=60)

    def refused() -> list:
        harness.send_compressed(big, topic=topic)
        return [r for r in node.reports() if int(r["faults_oversized"]) > 0]

    report = harness.wait_for(refused, timeout=60, period=1.0)
    assert report and f"image {3 * W}x{3 * H} has more than max_input_pixels" in report[-1]["last_error"]
    harness.unsubscribe(["semantic/labels"])


def test_images_lost_on_the_way_warn_while_in_the_window_and_stay_counted():
    from builtin_interfaces.msg import Time
    from diagnostic_msgs.msg import DiagnosticStatus

    from mtl_perception.ros.diagnostics import FrameStats, to_diagnostics

    now = [0.0]
    stats = FrameStats(window_s=5.0, clock=lambda: now[0])

    def status(reports_lost: bool = True):
        s = to_diagnostics(stats.snapshot(), Time(), "n", "/cam/image", {}, reports_lost=reports_lost).status[0]
        return s, {kv.key: kv.value for kv in s.values}

    stats.lost(3)  # none received yet: the loss is the news, not "waiting for images"
    stats.lost(2)
    s, v = status()
    assert s.level == DiagnosticStatus.WARN and s.message.startswith("5 image(s) on /cam/image lost on the way")
    assert "mtl-perception fastdds-profile" in s.message and v["frames_lost_in_transport"] == "5"
    now[0] += 6.0
    stats.received(False)
    stats.published(0.01, 0.01, 0.005)
    s, v = status()
    assert s.level == DiagnosticStatus.OK and v["frames_lost_in_transport"] == "5"  # out of the window, still counted
    assert status(reports_lost=False)[1]["frames_lost_in_transport"] == "not reported by this middleware"
