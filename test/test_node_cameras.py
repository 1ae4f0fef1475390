"""One node, several cameras (``cameras: front,left,rear``), over real rclpy on loopback.

Each camera has its own ``<name>/image`` in and outputs under ``<name>/``, with its own header
and resolution; the newest frame of every camera that has one goes through the model as one
batch; a camera that stops sending stalls nobody; /diagnostics has a status per camera.
"""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from rclpy.parameter import Parameter

from inference_helpers import tiny_checkpoint
from mtl_perception.inference.backend import Backend
from mtl_perception.inference.factory import create_backend
from mtl_perception.ros import conversions as conv
from mtl_perception.ros.node import PerceptionNode
from ros_domains import domain_id
from ros_harness import Harness, stamp_ns

SIZES = {"front": (48, 96), "left": (64, 64), "rear": (32, 64)}  # H x W per camera: three aspect ratios
TOPICS = ("semantic/labels", "depth/image", "semantic/camera_info")


class CountingBackend(Backend):
    """The real backend, recording the batch size of every forward pass; ``delay`` holds the
    worker busy so that frames of several cameras wait for the same round."""

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner.metadata, inner.device, inner.precision)
        self.inner, self.name = inner, inner.name
        self.batches: list[int] = []
        self.delay = 0.0

    def forward(self, x):
        self.batches.append(int(x.shape[0]))
        time.sleep(self.delay)
        return self.inner.forward(x)

    def describe(self) -> str:
        return self.inner.describe()


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
        mp.setenv("MTL_PERCEPTION_CACHE", str(tmp_path_factory.mktemp("cache")))
        backend = CountingBackend(create_backend("torch", tiny_checkpoint(tmp_path_factory.mktemp("m") / "t.pt"), "cpu"))
        harness = Harness(domain_id("node_cameras"), prefix="/rig")
        node = PerceptionNode(
            backend=backend, namespace="rig", context=harness.context,
            parameter_overrides=[Parameter("cameras", value=",".join(SIZES)), Parameter("output_resolution", value="input")],
        )
        harness.executor.add_node(node)
        harness.subscribe([f"{camera}/{topic}" for camera in SIZES for topic in TOPICS])
        try:
            yield harness, node, backend
        finally:
            harness.executor.remove_node(node)
            node.stop()
            node.destroy_node()
            harness.close()


def _image(camera: str, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*SIZES[camera], 3), dtype=np.uint8)


def test_each_camera_gets_its_outputs_under_its_name_with_its_header_and_size(rig):
    harness, _, _ = rig
    for camera, (h, w) in SIZES.items():  # one camera at a time: the others are silent meanwhile
        topics = [f"{camera}/{t}" for t in TOPICS]
        stamp, msgs = harness.send_until(lambda: harness.send_image(_image(camera), topic=f"{camera}/image"), topics, 90)
        labels, depth, info = (msgs[t] for t in topics)
        assert (labels.height, labels.width) == (depth.height, depth.width) == (info.height, info.width) == (h, w)
        assert stamp_ns(labels.header) == stamp_ns(depth.header) == stamp
        assert conv.image_to_numpy(labels).max() < 19
        for other in set(SIZES) - {camera}:  # nothing of this frame under another camera's name
            assert harness.received(f"{other}/semantic/labels", stamp) is None


def test_the_executors_wait_set_does_not_grow_with_the_output_publishers(rig):
    """The executor adds every waitable to its wait set on each wake-up (one per image and
    camera_info): the dozen output publishers per camera bring no event handlers, only the
    subscriptions keep theirs (Humble one each, later distributions two), as do /diagnostics
    and /parameter_events, and each image subscription has one more (images lost on the way)."""
    _, node, _ = rig
    assert len(list(node.publishers)) > 12 * len(SIZES)
    assert len(list(node.waitables)) <= 2 * (len(list(node.subscriptions)) + 2) + len(SIZES)


def test_the_newest_frames_of_several_cameras_share_one_forward_pass(rig):
    harness, _, backend = rig
    backend.delay = 1.0  # the worker is busy with the first frame while the others arrive
    try:
        def burst() -> int:
            stamps = [harness.send_image(_image(c, seed=1), topic=f"{c}/image") for c in ("front", "front", "left", "rear")]
            return stamps[-1]

        before = len(backend.batches)
        harness.send_until(burst, ["rear/semantic/labels"], 90)
        assert max(backend.batches[before:]) >= 2, backend.batches[before:]
    finally:
        backend.delay = 0.0


def test_a_silent_camera_stalls_nobody_and_diagnostics_has_a_status_per_camera(rig):
    harness, _, _ = rig
    start = time.monotonic()
    answered = 0
    for i in range(4):  # rear is silent from now on
        for camera in ("front", "left"):
            harness.send_until(lambda: harness.send_image(_image(camera, i), topic=f"{camera}/image"),
                               [f"{camera}/semantic/labels"], 60)
            answered += 1
    assert answered == 8
    def latest() -> dict[str, dict] | None:
        """Each camera's newest status, once the 1 Hz report has counted this test's frames."""
        found = {c: harness.diagnostics(f"/rig/{c}/image", since=start) for c in SIZES}
        if not all(found.values()):
            return None
        newest = {c: s[-1] for c, s in found.items()}
        done = all(int(newest[c]["frames_processed"]) >= 4 for c in ("front", "left"))
        return newest if done else None

    statuses = harness.wait_for(latest, 30)
    assert statuses, "no diagnostics status per camera counting the frames of this test"
    assert {s["input"] for s in statuses.values()} == {f"/rig/{c}/image" for c in SIZES}
    assert {s["batch"] for s in statuses.values()} == {"3 cameras, up to all per forward"}  # a dynamic graph


def test_a_model_of_batch_one_serves_several_cameras_and_says_how(rig, tmp_path_factory):
    """A fixed-shape export takes one image per forward: the node still serves every camera,
    one forward each, and its diagnostics and log say so (with what to export instead)."""
    from inference_helpers import shared_onnx

    harness, _, _ = rig
    fixed = create_backend("onnxruntime", shared_onnx(tmp_path_factory, dynamic=False), "cpu")
    assert fixed.max_batch == 1
    node = PerceptionNode(backend=fixed, namespace="fixed", context=harness.context,
                          parameter_overrides=[Parameter("cameras", value="a,b")])
    harness.executor.add_node(node)
    try:
        start = time.monotonic()
        status = harness.wait_for(
            lambda: next((s for s in harness.diagnostics("/fixed/a/image", since=start) if "batch" in s), None), 30
        )
        assert status and status["batch"] == "2 cameras, up to 1 per forward", status
        outputs = [f"/fixed/{camera}/semantic/labels" for camera in ("a", "b")]
        harness.subscribe(outputs)
        for camera, output in zip(("a", "b"), outputs):
            stamp, got = harness.send_until(
                lambda: harness.send_image(_image("front"), topic=f"/fixed/{camera}/image"), [output], 60
            )
            assert stamp_ns(got[output].header) == stamp
        harness.unsubscribe(outputs)
    finally:
        harness.executor.remove_node(node)
        node.stop()
        node.destroy_node()


def test_a_camera_named_twice_is_refused(rig):
    from mtl_perception.errors import UserError

    harness, _, _ = rig
    with pytest.raises(UserError, match="named twice"):
        PerceptionNode(namespace="twice", context=harness.context,
                       parameter_overrides=[Parameter("cameras", value="front,front")])


def test_the_four_camera_example_names_four_cameras_the_node_accepts():
    import yaml

    from launch_ast import REPO
    from mtl_perception.ros import parameters

    values = yaml.safe_load((REPO / "config" / "cameras_4.yaml").read_text())["mtl_perception"]["ros__parameters"]
    assert set(values) <= set(parameters.SPECS)
    assert parameters.check_each(values) is None and values["cameras"].split(",") == ["front", "left", "right", "rear"]


def test_the_node_asks_its_backend_for_one_batch_of_all_its_cameras(monkeypatch, tmp_path):
    """A TensorRT engine the node builds takes every camera's frame in one batch: the node
    tells the factory how many cameras it serves (one for the single-camera node)."""
    from mtl_perception.inference import factory
    from mtl_perception.ros.node import build_pipeline
    from mtl_perception.ros.parameters import SPECS

    model = tiny_checkpoint(tmp_path / "tiny.pt")
    asked: list[int] = []
    real = factory.create_backend

    def recording(*args, batch=1, **options):
        asked.append(batch)
        return real(*args, batch=batch, **options)

    monkeypatch.setattr(factory, "create_backend", recording)
    values = {name: spec.default for name, spec in SPECS.items()} | {"model_path": str(model), "backend": "torch"}
    for cameras in ("", "front,left,rear", "front,,rear"):
        build_pipeline(values | {"cameras": cameras})
    assert asked == [1, 3, 2]
