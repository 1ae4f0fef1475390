"""The perception node over real rclpy / Fast DDS on loopback.

One node process per module, started exactly as launch/perception.launch.py starts it (same
executable, node name, params file, parameters and remappings, read from the launch file
with ast); a tester in this process publishes frames and checks every output. Two extra
nodes run in-process where the test must reach inside: one whose backend returns NaN for
dark frames, one on compressed input.
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from rcl_interfaces.srv import SetParameters
from rclpy.parameter import Parameter
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from stereo_msgs.msg import DisparityImage
from visualization_msgs.msg import MarkerArray

from inference_helpers import BASELINE, FX, HEIGHT, WIDTH, tiny_checkpoint
from launch_ast import REPO, LaunchFile, node_command
from mtl_perception.data.synth.generate import render_image
from mtl_perception.inference.backend import Backend
from mtl_perception.ros import conversions as conv
from mtl_perception.ros.middleware import PROFILE, PROFILE_ENVS, configure_fastdds
from mtl_perception.inference.output_topics import CAMERA_INFOS, OUTPUT_TOPICS
from mtl_perception.ros.node import PerceptionNode
from mtl_perception.ros.qos import adapt_reliability, profile
from ros_domains import domain_id
from ros_harness import Harness, connected_harness, stamp_ns
from ros_harness import node_process as ros_node_process

DOMAIN_ID = domain_id("node")
CAMERA = "/test_cam"
IMAGE_TOPIC = f"{CAMERA}/image"
H, W = 48, 96  # camera size != the network's 64x128 (HEIGHT x WIDTH), another aspect ratio
START_TIMEOUT_S = 180.0


@pytest.fixture(scope="module")
def ros_env(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ROS_DOMAIN_ID", str(DOMAIN_ID))
        mp.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
        mp.setenv("MTL_PERCEPTION_CACHE", str(tmp_path_factory.mktemp("model_cache")))
        yield


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("model") / "tiny.pt")


@pytest.fixture(scope="module")
def backend(ros_env, model) -> Backend:
    """The backend the node's parameters choose (auto); built first so it fills the model cache."""
    from mtl_perception.inference.factory import create_backend

    return create_backend("auto", model, "auto")


def launch_command(model: Path, **arguments: str) -> list[str]:
    launch = LaunchFile.parse(REPO / "launch" / "perception.launch.py")
    args = {"image_topic": IMAGE_TOPIC, "camera_info_topic": f"{CAMERA}/camera_info", "model_path": str(model)}
    return node_command(launch, "mtl_perception", REPO, Path(sys.executable).parent, {**args, **arguments})


@pytest.fixture(scope="module")
def node_log(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("node_log") / "node.log"


@pytest.fixture(scope="module")
def node_process(backend, model, node_log):
    with ros_node_process(launch_command(model), node_log) as proc:
        yield proc


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return render_image("val", 0, H, W, seed=0).rgb


@pytest.fixture(scope="module")
def harness(ros_env, node_process, node_log, image):
    h = connected_harness(DOMAIN_ID, image, IMAGE_TOPIC, node_process, node_log, START_TIMEOUT_S)
    yield h
    h.close()


@pytest.fixture
def subscribed(harness):
    """Subscribe a test's topics and drop them afterwards, so tests do not change each other's load."""
    topics: list[str] = []

    def subscribe(names):
        topics.extend(names)
        harness.subscribe(names)

    yield subscribe
    harness.unsubscribe(topics)


EXPECTED = {
    "semantic/labels": (Image, "mono8"),
    "semantic/color": (Image, "rgb8"),
    "instance/labels": (Image, "mono16"),
    "instance/color": (Image, "rgb8"),
    "depth/image": (Image, "32FC1"),
    "depth/color": (Image, "rgb8"),
    "depth/disparity": (DisparityImage, "32FC1"),
    "points": (PointCloud2, None),
    "instance/markers": (MarkerArray, None),
}


def _check_images_and_infos(msgs: dict, stamp: int, height: int, width: int) -> None:
    """Every image output at ``height`` x ``width``; each group's camera_info of that size."""
    for topic, (kind, encoding) in EXPECTED.items():
        msg = msgs[topic]
        assert type(msg) is kind, topic
        header = msg.markers[0].header if kind is MarkerArray else msg.header
        assert stamp_ns(header) == stamp and header.frame_id == "test_camera_optical_frame", topic
        if encoding is not None:
            img = msg.image if kind is DisparityImage else msg
            assert (img.encoding, img.height, img.width) == (encoding, height, width), topic
            assert conv.image_to_numpy(img).shape[:2] == (height, width)
    for topic in CAMERA_INFOS:
        info = msgs[topic]
        assert stamp_ns(info.header) == stamp and info.header.frame_id == "test_camera_optical_frame", topic
        assert (info.width, info.height) == (width, height), topic
        # the training camera (no camera_info sent yet), at the outputs' resolution
        assert info.k[0] == pytest.approx(FX * width / WIDTH) and info.k[2] == pytest.approx((width - 1) / 2)
    disparity = msgs["depth/disparity"]
    assert disparity.f == pytest.approx(FX * width / WIDTH) and disparity.t == pytest.approx(BASELINE)


def test_every_output_arrives_with_its_type_encoding_size_and_the_input_header(harness, subscribed, image):
    """Default: outputs at the network's size (64x128) for a 48x96 camera, camera_info next to them."""
    assert set(EXPECTED) == set(OUTPUT_TOPICS)
    subscribed(list(EXPECTED) + list(CAMERA_INFOS))
    topics = list(EXPECTED) + list(CAMERA_INFOS)
    stamp, msgs = harness.send_until(lambda: harness.send_image(image, topic=IMAGE_TOPIC), topics, timeout=60)
    _check_images_and_infos(msgs, stamp, HEIGHT, WIDTH)
    cloud = msgs["points"]
    assert [f.name for f in cloud.fields] == ["x", "y", "z", "rgb", "label", "instance"] and cloud.width > 0
    semantic = conv.image_to_numpy(msgs["semantic/labels"])
    assert semantic.max() < 19
    instances = conv.image_to_numpy(msgs["instance/labels"])
    spheres = [m for m in msgs["instance/markers"].markers if m.ns == "instances"]
    assert len(spheres) <= len(np.unique(instances[instances > 0]))


def test_outputs_at_the_camera_resolution_when_asked_with_points_still_from_the_network(
    harness, subscribed, image, backend
):
    from mtl_perception.inference.pipeline import Pipeline

    subscribed(list(EXPECTED) + list(CAMERA_INFOS))
    topics = list(EXPECTED) + list(CAMERA_INFOS)
    assert _set(harness, "output_resolution", "input") == (True, "")
    try:
        def at_camera_size():
            stamp, msgs = harness.send_until(lambda: harness.send_image(image, topic=IMAGE_TOPIC), topics, timeout=30)
            return (stamp, msgs) if msgs["depth/image"].width == W else None

        stamp, msgs = harness.wait_for(at_camera_size, timeout=30)
        _check_images_and_infos(msgs, stamp, H, W)
        # points: the stride-2 grid of the network-sized depth, not of the camera-sized one
        network = Pipeline(backend, output_resolution="network")(image, outputs={"depth"}).depth[::2, ::2]
        cloud = np.frombuffer(msgs["points"].data, dtype=conv.POINT_DTYPE)
        keep = np.isfinite(network) & (network <= 80.0)
        assert len(cloud) == keep.sum() and len(cloud) > (H // 2) * (W // 2)
        np.testing.assert_allclose(np.sort(cloud["z"]), np.sort(network[keep]), rtol=1e-5)
    finally:
        assert _set(harness, "output_resolution", "network") == (True, "")


def test_outputs_nobody_subscribes_to_are_not_computed(harness, subscribed, image):
    subscribed(["semantic/labels"])
    since = time.monotonic()

    def only_labels() -> bool:
        stamp = harness.send_image(image, topic=IMAGE_TOPIC)
        harness.wait_for(lambda: harness.received("semantic/labels", stamp), 10)
        reports = harness.diagnostics(IMAGE_TOPIC, since)
        return bool(reports) and reports[-1]["outputs"] == "semantic/labels"

    assert harness.wait_for(only_labels, timeout=30, period=0.5)


def test_frames_nobody_listens_to_are_skipped_and_diagnostics_say_so(harness, image):
    """With no subscriber the node computes nothing, books every frame as skipped and says why
    its output rate is zero, instead of an "OK, 0 Hz out" that looks like a stall."""
    since = time.monotonic()

    def idle() -> dict | None:
        harness.send_image(image, topic=IMAGE_TOPIC)
        reports = harness.diagnostics(IMAGE_TOPIC, since)
        return reports[-1] if reports and "nothing computed" in reports[-1]["message"] else None

    report = harness.wait_for(idle, timeout=30, period=0.3)
    assert report, (harness.diagnostics(IMAGE_TOPIC, since) or [None])[-1]
    assert report["message"].endswith("no output has a subscriber") and int(report["frames_skipped"]) > 0


def test_depth_points_and_disparity_agree_with_the_pipeline_run_in_process(harness, subscribed, image, backend):
    from mtl_perception.inference.pipeline import Pipeline

    subscribed(["depth/image", "depth/disparity", "points", "depth/camera_info"])
    # P[3] of a right camera of a 0.5 m rig: the network's disparity refers to the training
    # rig (0.2 m), so depth must ignore it (use_camera_info_baseline: false).
    info = CameraInfo(
        width=2 * W, height=2 * H, k=[120.0, 0, 2 * W / 2, 0, 130.0, H, 0, 0, 1],
        p=[120.0, 0, 2 * W / 2, -120.0 * 0.5, 0, 130.0, H, 0, 0, 0, 1, 0],
    )
    since = time.monotonic()

    def info_in_use() -> bool:
        harness.send_camera_info(info, topic=f"{CAMERA}/camera_info")
        time.sleep(0.3)
        harness.send_image(image, topic=IMAGE_TOPIC)
        reports = harness.diagnostics(IMAGE_TOPIC, since)
        return bool(reports) and reports[-1]["camera"] == "camera_info"

    assert harness.wait_for(info_in_use, timeout=30, period=1.0)
    _, msgs = harness.send_until(
        lambda: harness.send_image(image, topic=IMAGE_TOPIC),
        ["depth/image", "depth/disparity", "points", "depth/camera_info"], timeout=30,
    )
    camera = conv.camera_from_info(info, W, H).scaled(WIDTH, HEIGHT)
    assert camera.baseline is None and BASELINE != 0.5
    expected = Pipeline(backend, output_resolution="network")(image, camera=camera, outputs={"depth", "disparity"})
    out_info = msgs["depth/camera_info"]
    assert (out_info.width, out_info.height) == (WIDTH, HEIGHT)
    assert list(out_info.k) == pytest.approx([camera.fx, 0, camera.cx, 0, camera.fy, camera.cy, 0, 0, 1])
    assert out_info.p[3] == pytest.approx(-camera.fx * 0.5)  # the camera's own rig, mapped like K
    depth = conv.image_to_numpy(msgs["depth/image"])
    np.testing.assert_array_equal(np.isnan(depth), np.isnan(expected.depth))
    np.testing.assert_array_equal(np.isinf(depth), np.isinf(expected.depth))
    finite = np.isfinite(depth)
    assert finite.mean() > 0.5, "the tiny model should give mostly finite depth"
    np.testing.assert_allclose(depth[finite], expected.depth[finite], rtol=1e-3)
    disparity = msgs["depth/disparity"]
    assert disparity.f == pytest.approx(camera.fx) and disparity.t == pytest.approx(BASELINE)
    np.testing.assert_allclose(conv.image_to_numpy(disparity.image), expected.disparity, rtol=1e-3, atol=1e-4)
    # points: every finite, in-range pixel of the stride-2 grid, at its depth
    cloud = np.frombuffer(msgs["points"].data, dtype=conv.POINT_DTYPE)
    grid = depth[::2, ::2]
    keep = np.isfinite(grid) & (grid <= 80.0)
    assert len(cloud) == keep.sum()
    np.testing.assert_allclose(np.sort(cloud["z"]), np.sort(grid[keep]), rtol=1e-6)


def _image_msg(**fields) -> Image:
    base = dict(height=H, width=W, encoding="rgb8", step=3 * W, data=bytes(3 * W * H))
    base.update(fields)
    return Image(**base)


BAD_FRAMES = {
    "unknown encoding": (_image_msg(encoding="yuv422"), "unsupported camera encoding 'yuv422'"),
    "step too short": (_image_msg(step=W), "is shorter than one row"),
    "size mismatch": (_image_msg(data=bytes(3 * W * H + 7)), "data size does not match"),
    "empty image": (_image_msg(height=0, width=0, step=0, data=b""), "empty image"),
    "truncated data": (_image_msg(data=bytes(3 * W * (H - 1))), "truncated data"),
}


def test_bad_frames_are_reported_and_the_next_good_frame_is_processed(harness, subscribed, image, node_process):
    subscribed(["semantic/labels"])
    for name, (msg, message) in BAD_FRAMES.items():
        since = time.monotonic()
        msg.header = harness.header()
        harness.publish(IMAGE_TOPIC, msg)

        def reported():
            return [d for d in harness.diagnostics(IMAGE_TOPIC, since) if d["level"] == b"\x02"]

        errors = harness.wait_for(reported, timeout=10)
        assert errors, f"{name}: no ERROR in /diagnostics"
        assert message in errors[-1]["message"] and message in errors[-1]["last_error"], name
        harness.send_until(lambda: harness.send_image(image, topic=IMAGE_TOPIC), ["semantic/labels"], timeout=20)
    assert node_process.poll() is None
    assert int(harness.diagnostics(IMAGE_TOPIC)[-1]["frames_rejected"]) >= len(BAD_FRAMES)


def _set(harness, name: str, value, node: str = "/mtl_perception") -> tuple[bool, str]:
    """Set one parameter of ``node`` through its set_parameters service: (accepted, reason)."""
    client = harness.node.create_client(SetParameters, f"{node}/set_parameters")
    try:
        assert client.wait_for_service(timeout_sec=10)
        request = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
        future = client.call_async(request)
        harness.wait_for(future.done, timeout=10)
        result = future.result().results[0]
        return result.successful, result.reason
    finally:
        harness.node.destroy_client(client)


BAD_PARAMETERS = [
    ("points_stride", 0, "out of range"),
    ("semantic_color_alpha", 1.5, "out of range"),
    ("output_resolution", "full", "output_resolution must be one of input, network"),
    ("depth_color_min_m", 90.0, "must be smaller than depth_color_max_m"),
    ("points_stride", "2", "Wrong parameter type"),
    ("grouping", "optics", "read-only"),
]


@pytest.mark.parametrize("name, value, reason", BAD_PARAMETERS)
def test_bad_parameter_values_are_refused_with_a_reason(harness, name, value, reason):
    successful, why = _set(harness, name, value)
    assert not successful and reason in why


def test_a_good_parameter_value_is_accepted(harness):
    assert _set(harness, "points_stride", 3) == (True, "")
    assert _set(harness, "points_stride", 2) == (True, "")


def test_the_image_subscription_follows_a_best_effort_camera_and_back(harness, subscribed, image):
    subscribed(["semantic/labels"])
    camera = harness.node.create_publisher(Image, IMAGE_TOPIC, profile("best_effort", 5))

    def image_qos() -> str:
        reports = harness.diagnostics(IMAGE_TOPIC)
        return reports[-1]["image_qos"] if reports else ""

    try:
        assert harness.wait_for(lambda: image_qos().startswith("best_effort"), timeout=10)

        def send_best_effort() -> int:
            header = harness.header()
            camera.publish(conv.numpy_to_image(image, "rgb8", header))
            return stamp_ns(header)

        harness.send_until(send_best_effort, ["semantic/labels"], timeout=20)
    finally:
        harness.node.destroy_publisher(camera)
    assert harness.wait_for(lambda: image_qos().startswith("reliable"), timeout=10)


def test_latency_stays_bounded_and_drops_are_counted_when_the_camera_is_twice_as_fast(harness, subscribed, image):
    subscribed(["semantic/labels"])
    send = lambda: harness.send_image(image, topic=IMAGE_TOPIC)  # noqa: E731
    harness.send_until(send, ["semantic/labels"], timeout=30)
    periods = []
    for _ in range(5):  # the model's own rate, one frame at a time
        t0 = time.monotonic()
        harness.send_until(send, ["semantic/labels"], timeout=30)
        periods.append(time.monotonic() - t0)
    diagnostics = harness.wait_for(lambda: harness.diagnostics(IMAGE_TOPIC), 5)[-1]
    # The model's rate is what the worker sustains (receive -> publish), which can be much
    # faster than a round trip; the camera runs at twice the faster of the two estimates.
    worker_s = float(diagnostics["latency_receive_to_publish_p50_ms"]) / 1e3
    assert 0.0 <= float(diagnostics["latency_transport_p50_ms"]) < 5e3, diagnostics  # writer -> node, this host
    interval = min(float(np.median(periods)), worker_s if worker_s > 0 else float("inf")) / 2.0
    dropped_before = int(diagnostics["frames_dropped"])
    sent: dict[int, float] = {}
    start = time.monotonic()
    while time.monotonic() - start < 20.0:
        sent[send()] = time.monotonic()
        time.sleep(max(0.0, start + len(sent) * interval - time.monotonic()))
    time.sleep(2.0 + 2 * interval)
    arrivals = {stamp_ns(m.header): t for t, m in harness.messages["semantic/labels"] if stamp_ns(m.header) in sent}
    latency = [(sent[s] - start, t - sent[s]) for s, t in arrivals.items()]
    first = [dt for t, dt in latency if t < 5.0]
    last = [dt for t, dt in latency if t >= 15.0]
    assert len(first) >= 3 and len(last) >= 3, (len(first), len(last))
    # A queue (what the check is for) adds a whole model period per queued frame and, at twice
    # the model's rate, grows by a period every period: after 15 s the latency would be seconds.
    # Load from other processes on a shared 2-core machine doubles a p95 of ~30 samples now and
    # then (seen: 18 -> 36 ms, 27 -> 49 ms); the median moves far less. So: medians, and twice
    # the first plus three periods, which a queue passes within its first second.
    p50_first, p50_last = float(np.median(first)), float(np.median(last))
    period = 2 * interval
    assert p50_last <= 2 * p50_first + 3 * period, (
        f"latency grew: p50 {p50_first * 1e3:.0f} ms -> {p50_last * 1e3:.0f} ms (model period {period * 1e3:.0f} ms)"
    )
    # Every frame is either processed (its output arrived) or counted as dropped.
    dropped = int(harness.diagnostics(IMAGE_TOPIC)[-1]["frames_dropped"]) - dropped_before
    # A few frames may never reach the node: at this rate the camera's keep-last writer replaces
    # samples DDS has not delivered yet (that is DDS, not the node, and is not the node's count).
    accounted = len(arrivals) + dropped
    assert dropped > 0 and len(sent) - max(2, 0.02 * len(sent)) <= accounted <= len(sent), (len(sent), len(arrivals), dropped)


def test_a_missing_model_ends_the_process_with_one_clear_line_and_exit_2(ros_env, tmp_path):
    result = subprocess.run(launch_command(tmp_path / "missing.pt"), capture_output=True, text=True, timeout=120)
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert f"model file not found: {tmp_path / 'missing.pt'}" in out and "Traceback" not in out, out
    assert len([line for line in out.splitlines() if "FATAL" in line]) == 1, out


@pytest.mark.parametrize("case", ["corrupt model", "bad params file"])
def test_a_corrupt_model_or_bad_parameter_stops_start_up_with_one_clear_line(
    ros_env, tmp_path, capfd, monkeypatch, case
):
    """In-process ``main`` (the console script's body) to spare a process start per case."""
    from mtl_perception.ros.node import main

    for name in PROFILE_ENVS.values():
        monkeypatch.setenv(name, "")  # main sets them; monkeypatch restores them afterwards

    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"this is not a checkpoint")
    bad_params = tmp_path / "bad.yaml"
    bad_params.write_text((REPO / "config" / "perception.yaml").read_text().replace("points_stride: 2", "points_stride: 0"))
    command, expected = {
        "corrupt model": (launch_command(corrupt), f"cannot read checkpoint {corrupt}"),
        "bad params file": (launch_command(corrupt, params_file=str(bad_params)), "points_stride out of range"),
    }[case]
    assert main(command) == 2
    out = "".join(capfd.readouterr())
    assert expected in out and "Traceback" not in out, out
    assert len([line for line in out.splitlines() if "FATAL" in line]) == 1, out


class DarkFramesGiveNaN(Backend):
    """The tiny model, except that a dark frame makes every output NaN (a stand-in for a broken model)."""

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner.metadata, inner.device, inner.precision)
        self.inner = inner
        self.name = inner.name

    def forward(self, x):
        out = self.inner.forward(x)
        if float(x.float().mean()) < -1.5:  # black pixels normalise to about -2
            out = {k: v.float() * float("nan") for k, v in out.items()}
        return out


def _in_process_node(harness, namespace: str, backend: Backend, **overrides) -> PerceptionNode:
    node = PerceptionNode(
        backend=backend,
        namespace=namespace,
        context=harness.context,
        parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()],
    )
    harness.executor.add_node(node)
    return node


def _remove(harness, node: PerceptionNode) -> None:
    harness.executor.remove_node(node)
    node.stop()
    node.destroy_node()


def test_nan_from_the_model_is_reported_and_the_next_good_frame_is_processed(harness, backend, image):
    node = _in_process_node(harness, "nan_check", DarkFramesGiveNaN(backend))
    try:
        topic = "/nan_check/image"
        harness.prefix = "/nan_check"
        harness.subscribe(["semantic/labels"])
        send_good = lambda: harness.send_image(image, topic=topic)  # noqa: E731
        harness.send_until(send_good, ["semantic/labels"], timeout=30)
        since = time.monotonic()
        harness.send_image(np.zeros_like(image), topic=topic)
        errors = harness.wait_for(
            lambda: [d for d in harness.diagnostics(topic, since) if d["level"] == b"\x02"], timeout=10
        )
        assert errors and "non-finite network output" in errors[-1]["last_error"]
        harness.send_until(send_good, ["semantic/labels"], timeout=20)
    finally:
        harness.unsubscribe(["semantic/labels"])
        harness.prefix = ""
        _remove(harness, node)


def test_a_skip_decoder_model_runs_in_the_node(harness, image, tmp_path):
    """A model with the stride-4 detail decoder goes through the backend factory (ONNX export,
    onnxruntime) and the node like the paper's; its labels are the pipeline's."""
    from mtl_perception.inference.factory import create_backend
    from mtl_perception.inference.pipeline import Pipeline

    skip_backend = create_backend("auto", tiny_checkpoint(tmp_path / "skip.pt", decoder="skip"), "auto")
    node = _in_process_node(harness, "skip_check", skip_backend)
    try:
        harness.prefix = "/skip_check"
        harness.subscribe(["semantic/labels", "instance/labels"])
        _, msgs = harness.send_until(
            lambda: harness.send_image(image, topic="/skip_check/image"), ["semantic/labels", "instance/labels"], timeout=60
        )
        expected = Pipeline(skip_backend, output_resolution="network")(image, outputs={"semantic", "instances"})
        np.testing.assert_array_equal(conv.image_to_numpy(msgs["semantic/labels"]), expected.semantic)
    finally:
        harness.unsubscribe(["semantic/labels", "instance/labels"])
        harness.prefix = ""
        _remove(harness, node)


def test_compressed_input_is_decoded(harness, backend, image):
    node = _in_process_node(harness, "compressed_check", backend, input_transport="compressed")
    try:
        harness.prefix = "/compressed_check"
        harness.subscribe(["semantic/labels"])
        jpeg = cv2.imencode(".jpg", image[..., ::-1])[1].tobytes()
        _, msgs = harness.send_until(lambda: harness.send_compressed(jpeg), ["semantic/labels"], timeout=30)
        assert (msgs["semantic/labels"].height, msgs["semantic/labels"].width) == (HEIGHT, WIDTH)
    finally:
        harness.unsubscribe(["semantic/labels"])
        harness.prefix = ""
        _remove(harness, node)


def test_fast_dds_gets_a_large_shared_memory_segment_unless_configured(tmp_path, monkeypatch):
    """Which variable is set for which Fast DDS; test_node_distros.py checks that Fast DDS applies it."""
    monkeypatch.setenv("MTL_PERCEPTION_CACHE", str(tmp_path))
    cases = {  # the Fast DDS library a folder holds -> the variables set
        "libfastrtps.so.2.14": ["FASTRTPS_DEFAULT_PROFILES_FILE"],  # Humble, Jazzy
        "libfastdds.so.3.2": ["FASTDDS_DEFAULT_PROFILES_FILE"],  # Kilted
        "libsomething_else.so": list(PROFILE_ENVS.values()),  # unknown: both
    }
    for library, names in cases.items():
        (tmp_path / library).mkdir()
        (tmp_path / library / library).touch()
        env: dict[str, str] = {}
        setup = configure_fastdds(env, search=[tmp_path / library])
        assert sorted(env) == sorted(names) and all(env[n] == str(setup.profile) for n in names), library
        assert setup.profile.read_text() == PROFILE and all(n in setup.note for n in names)
    assert "<segment_size>33554432</segment_size>" in PROFILE
    for name in PROFILE_ENVS.values():
        mine = {name: "/robot/fastdds.xml"}
        setup = configure_fastdds(mine)
        assert setup.profile is None and mine == {name: "/robot/fastdds.xml"} and "/robot/fastdds.xml" in setup.note
    cyclone = {"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}
    assert configure_fastdds(cyclone).profile is None and cyclone == {"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}


def test_reader_reliability_follows_the_writers():
    reliable, best_effort = ReliabilityPolicy.RELIABLE, ReliabilityPolicy.BEST_EFFORT
    assert adapt_reliability([reliable, reliable], "best_effort") == "reliable"
    assert adapt_reliability([reliable, best_effort], "reliable") == "best_effort"
    assert adapt_reliability([], "reliable") == "reliable"
