"""The node on what differs between ROS distributions: Humble's rclpy, Fast DDS 2.x and 3.x.

Humble (rclpy 3.x) is not on PyPI: the real node runs in a process whose rclpy has the
methods Humble lacks removed (``humble_rclpy.py``) and must start, serve and refuse bad
parameters exactly as on Jazzy and Kilted. The Fast DDS profile is checked by its effect: the
shared-memory segment Fast DDS really mapped in the node's process (``/proc/PID/maps``), and
large reliable frames crossing processes intact. CI runs this file on Kilted (Fast DDS 3.x)
and Jazzy (Fast DDS 2.14).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticStatus
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from inference_helpers import HEIGHT, WIDTH, tiny_checkpoint
from launch_ast import REPO
from mtl_perception.ros import conversions as conv
from mtl_perception.ros.middleware import (
    PROFILE, PROFILE_ENVS, SEGMENT_BYTES, fastdds_major, library_dirs, shared_memory_segments,
)
from ros_domains import domain_id
from ros_harness import Harness, connected_harness, node_process
from test_node import BAD_PARAMETERS, IMAGE_TOPIC, _set, launch_command

HERE = Path(__file__).parent
START_TIMEOUT_S = 180.0


@pytest.fixture(scope="module")
def ros_env(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ROS_DOMAIN_ID", str(domain_id("node_humble")))
        mp.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
        mp.setenv("MTL_PERCEPTION_CACHE", str(tmp_path_factory.mktemp("model_cache")))
        for name in PROFILE_ENVS.values():
            mp.delenv(name, raising=False)
        yield


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("model") / "tiny.pt")


def humble_command(model: Path, **arguments: str) -> list[str]:
    """The launch file's command line, its executable replaced by the Humble stand-in."""
    return [sys.executable, str(HERE / "humble_rclpy.py"), *launch_command(model, **arguments)[1:]]


@pytest.fixture(scope="module")
def humble_node(ros_env, model, tmp_path_factory):
    log = tmp_path_factory.mktemp("node_log") / "node.log"
    with node_process(humble_command(model), log) as proc:
        yield proc, log


@pytest.fixture(scope="module")
def harness(humble_node):
    proc, log = humble_node
    h = connected_harness(domain_id("node_humble"), np.zeros((48, 96, 3), np.uint8), IMAGE_TOPIC, proc, log, START_TIMEOUT_S)
    yield h
    h.close()


def test_on_humble_the_node_serves_every_output(harness):
    topics = ["semantic/labels", "instance/labels", "depth/image", "points", "instance/markers"]
    harness.subscribe(topics)
    try:
        _, msgs = harness.send_until(
            lambda: harness.send_image(np.zeros((48, 96, 3), np.uint8), topic=IMAGE_TOPIC), topics, timeout=60
        )
    finally:
        harness.unsubscribe(topics[1:])
    assert (msgs["semantic/labels"].height, msgs["semantic/labels"].width) == (HEIGHT, WIDTH)  # network resolution


@pytest.mark.parametrize("name, value, reason", BAD_PARAMETERS)
def test_on_humble_bad_parameter_values_are_refused_with_the_same_reason(harness, name, value, reason):
    successful, why = _set(harness, name, value)
    assert not successful and reason in why


def test_on_humble_an_accepted_parameter_takes_effect(harness):
    """The change reaches the running pipeline (Humble has no post-set callback to do it)."""
    image = np.zeros((48, 96, 3), np.uint8)
    assert _set(harness, "output_resolution", "network") == (True, "")
    try:
        def network_sized() -> bool:
            _, msgs = harness.send_until(lambda: harness.send_image(image, topic=IMAGE_TOPIC), ["semantic/labels"], 30)
            return (msgs["semantic/labels"].height, msgs["semantic/labels"].width) == (64, 128)

        assert harness.wait_for(network_sized, timeout=60, period=0.1)
    finally:
        assert _set(harness, "output_resolution", "input") == (True, "")


def test_on_humble_a_bad_params_file_stops_start_up_with_one_clear_line(ros_env, model, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((REPO / "config" / "perception.yaml").read_text().replace("points_stride: 2", "points_stride: 0"))
    result = subprocess.run(humble_command(model, params_file=str(bad)), capture_output=True, text=True, timeout=120)
    out = result.stdout + result.stderr
    assert result.returncode == 2 and "points_stride out of range" in out and "Traceback" not in out, out
    assert len([line for line in out.splitlines() if "FATAL" in line]) == 1, out


# ---------------------------------------------------------------------- Fast DDS profile
def test_fast_dds_maps_the_nodes_32_mib_segment_and_the_log_says_so(harness, humble_node):
    proc, log = humble_node
    segments = shared_memory_segments(f"/proc/{proc.pid}/maps")
    assert segments and segments[0] >= SEGMENT_BYTES, f"Fast DDS ignored the profile: segments {segments}"
    assert "Fast DDS uses a 32 MiB shared-memory segment" in log.read_text(), log.read_text()


def _probe(env: dict[str, str], *args: str, timeout: float = 180) -> list[str]:
    result = subprocess.run(
        [sys.executable, str(HERE / "fastdds_probe.py"), *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.splitlines()


@pytest.mark.parametrize("variable", sorted(PROFILE_ENVS.values()))
def test_a_users_own_profile_is_kept_and_logged(ros_env, tmp_path, variable):
    """The user's profile (an 8 MiB segment) is what Fast DDS maps when it reads that variable."""
    mine = tmp_path / "robot_fastdds.xml"
    mine.write_text(PROFILE.replace(f"<segment_size>{SEGMENT_BYTES}</segment_size>", "<segment_size>8388608</segment_size>"))
    lines = _probe({**os.environ, "ROS_DOMAIN_ID": str(domain_id("fastdds_profile")), variable: str(mine)})
    assert f"Fast DDS profile of the user kept ({variable}={mine})" in lines[0], lines
    segments = [int(n) for n in lines[1].split()[1:]]
    assert SEGMENT_BYTES not in [s >> 20 << 20 for s in segments], segments  # ours was not applied
    # Each Fast DDS reads one of the two variables: the one it reads shows the user's segment.
    if variable == PROFILE_ENVS.get(fastdds_major(library_dirs())):
        assert any(8 << 20 <= s < 9 << 20 for s in segments), segments


def test_a_camera_driver_started_after_eval_of_fastdds_profile_maps_the_32_mib_segment(ros_env):
    """``eval "$(mtl-perception fastdds-profile)"`` then a driver: its writer has the node's segment."""
    env = {**os.environ, "ROS_DOMAIN_ID": str(domain_id("fastdds_profile"))}
    driver = f'eval "$({sys.executable} -m mtl_perception.cli fastdds-profile)" && exec {sys.executable} {HERE / "fastdds_probe.py"}'
    result = subprocess.run(["bash", "-c", driver], env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "Fast DDS profile of the user kept" in lines[0], lines  # the probe saw the exported variable
    assert max(int(n) for n in lines[1].split()[1:]) >= SEGMENT_BYTES, lines


def test_fastdds_profile_prints_nothing_to_eval_under_another_middleware_or_a_users_profile():
    from mtl_perception.ros.fastdds_command import exports

    assert exports({"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}) == []
    assert exports({"FASTRTPS_DEFAULT_PROFILES_FILE": "/etc/robot.xml"}) == []


def test_fastdds_profile_in_an_unwritable_cache_is_one_line_not_a_traceback(tmp_path, monkeypatch, capsys):
    from mtl_perception.cli import main

    (tmp_path / "file").write_text("")
    monkeypatch.setenv("MTL_PERCEPTION_CACHE", str(tmp_path / "file" / "cache"))
    for name in PROFILE_ENVS.values():  # an in-process bench of another test may have set one
        monkeypatch.delenv(name, raising=False)
    assert main(["fastdds-profile"]) == 2
    out = capsys.readouterr()
    assert out.out == "" and "set MTL_PERCEPTION_CACHE to a writable folder" in out.err, out


def test_large_reliable_frames_cross_processes_intact_with_the_profile(ros_env):
    """30 reliable 512x1024 rgb8 frames from a writer configured as the node configures itself."""
    frames, height, width = 30, 512, 1024
    env = {**os.environ, "ROS_DOMAIN_ID": str(domain_id("fastdds_profile"))}
    h = Harness(domain_id("fastdds_profile"))
    received: list[tuple[int, Image]] = []
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=frames, reliability=ReliabilityPolicy.RELIABLE)
    h.node.create_subscription(Image, "/probe/image", lambda m: received.append((time.time_ns(), m)), qos)
    try:
        lines = _probe(env, "--publish", str(frames), str(height), str(width))
        assert "Fast DDS uses a 32 MiB shared-memory segment" in lines[0], lines
        assert lines[-1] == "acked True", lines
        assert h.wait_for(lambda: len(received) == frames, timeout=30), len(received)
    finally:
        h.close()
    assert [int(m.header.frame_id) for _, m in received] == list(range(frames))
    for i, (_, msg) in enumerate(received):
        pixels = conv.image_to_numpy(msg)
        assert pixels.shape == (height, width, 3) and pixels[0, 0, 0] == pixels[-1, -1, -1] == i % 256
    latency_ms = [(t - (m.header.stamp.sec * 10**9 + m.header.stamp.nanosec)) / 1e6 for t, m in received]
    print(f"512x1024 rgb8 publish -> Python callback: p50 {np.median(latency_ms):.1f} ms, max {max(latency_ms):.1f} ms")


def test_images_lost_on_the_way_from_an_unconfigured_driver_are_a_warn_that_says_why(harness):
    """Best-effort 1024x2048 images from a driver with Fast DDS's 512 KiB segment do not all
    arrive (here none or nearly none do); the node counts what Fast DDS reports lost and warns
    with the remedy instead of looking like a quiet camera. Last in this module: the node's
    image subscription follows the writer to best effort."""
    since = time.monotonic()
    env = {**os.environ, "ROS_DOMAIN_ID": str(domain_id("node_humble"))}
    args = ["--as-shipped", "--publish", "40", "1024", "2048", "--reliability", "best_effort", "--topic", IMAGE_TOPIC]
    lines = _probe(env, *args)
    assert lines[-1] == "acked True", lines

    def warned() -> dict | None:
        reports = [r for r in harness.diagnostics(IMAGE_TOPIC, since) if "lost on the way" in r["message"]]
        return reports[-1] if reports else None

    report = harness.wait_for(warned, timeout=15, period=0.2)
    assert report, (harness.diagnostics(IMAGE_TOPIC, since) or [None])[-1]
    assert report["level"] == DiagnosticStatus.WARN and "mtl-perception fastdds-profile" in report["message"]
    assert 0 < int(report["frames_lost_in_transport"]) <= 40, report
