"""After ``colcon build``, the installed perception_node runs with the installed config and publishes.

The same steps as on a robot: build a copy of the package with colcon, ``source
install/setup.bash``, start the executable where ``ros2 run mtl_perception perception_node``
finds it with ``--params-file <install>/share/mtl_perception/config/perception.yaml``, and
receive ``semantic/labels`` with rclpy.
"""
from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import numpy as np

from inference_helpers import HEIGHT, WIDTH, tiny_checkpoint
from ros_domains import domain_id
from ros_harness import Harness

DOMAIN_ID = domain_id("node_colcon")


def test_installed_node_runs_with_installed_config_and_publishes(colcon_install, tmp_path, monkeypatch):
    install = colcon_install
    monkeypatch.setenv("ROS_DOMAIN_ID", str(DOMAIN_ID))
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    monkeypatch.setenv("MTL_PERCEPTION_CACHE", str(tmp_path / "cache"))
    prefix = install / "mtl_perception"
    params = prefix / "share" / "mtl_perception" / "config" / "perception.yaml"
    executable = prefix / "lib" / "mtl_perception" / "perception_node"
    model = tiny_checkpoint(tmp_path / "tiny.pt")
    # backend torch: the installed config's `auto` would first export the checkpoint to ONNX
    # (about 20 s here); test_node.py covers that path.
    command = (
        f"source {install / 'setup.bash'} && exec {executable} --ros-args --params-file {params} "
        f"-p model_path:={model} -p backend:=torch -r image:=/colcon_cam/image"
    )
    log = tmp_path / "node.log"
    with open(log, "w") as out:
        node = subprocess.Popen(["bash", "-c", command], stdout=out, stderr=subprocess.STDOUT)
    harness = Harness(DOMAIN_ID)
    try:
        harness.subscribe(["semantic/labels"])
        image = np.random.default_rng(0).integers(0, 256, (32, 64, 3), dtype=np.uint8)
        try:
            _, msgs = harness.send_until(
                lambda: harness.send_image(image, topic="/colcon_cam/image"), ["semantic/labels"], timeout=120
            )
        except AssertionError:
            raise AssertionError(f"no output; node exit {node.poll()}, log:\n{log.read_text()[-3000:]}") from None
        labels = msgs["semantic/labels"]
        assert (labels.encoding, labels.height, labels.width) == ("mono8", HEIGHT, WIDTH)  # network resolution
    finally:
        harness.close()
        node.send_signal(signal.SIGINT)
        try:
            node.wait(timeout=15)
        except subprocess.TimeoutExpired:
            node.kill()
    assert node.returncode == 0, log.read_text()[-3000:]
    # ... and it was the built copy that ran, not this checkout's editable install
    probe = f"source {install / 'setup.bash'} && {sys.executable} -c 'import mtl_perception; print(mtl_perception.__file__)'"
    result = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert Path(result.stdout.strip()).is_relative_to(install), result.stdout + result.stderr
