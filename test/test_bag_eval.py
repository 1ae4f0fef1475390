"""``mtl-perception bag eval``: bags through the perception, offline and through the live node.

Real bag files throughout: written by ``bag make`` from the synthetic dataset, or by
``rosbags`` alone with foreign topic names and encodings, then damaged on purpose. Scoring is
checked with an oracle pipeline that returns the ground truth (and a shifted one), so the
numbers are known; the real model checks wiring, reports and the output bag.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from rosbags.rosbag2 import Reader, StoragePlugin, Writer

from mtl_perception.bag import messages
from mtl_perception.bag.offline_eval import evaluate_offline
from mtl_perception.bag.reader import BagInput
from mtl_perception.bag.scoring import instances_from_map
from mtl_perception.cli import main
from mtl_perception.data.labels import INSTANCE_ID_DIVISOR, IS_THING_TRAIN_ID, LABEL_ID_TO_TRAIN_ID, train_id
from ros_domains import domain_id

#: Frames of the live replay: enough for a latency trend when the node keeps only a few of them.
LIVE_FRAMES = 120
#: The torch backend on the CPU: no ONNX export or engine cache behind the tests' back.
TORCH = ("--backend", "torch", "--device", "cpu")
OUTPUT_TOPICS = {
    "semantic/labels": ("sensor_msgs/msg/Image", "mono8"),
    "semantic/color": ("sensor_msgs/msg/Image", "rgb8"),
    "instance/labels": ("sensor_msgs/msg/Image", "mono16"),
    "instance/color": ("sensor_msgs/msg/Image", "rgb8"),
    "depth/image": ("sensor_msgs/msg/Image", "32FC1"),
    "depth/color": ("sensor_msgs/msg/Image", "rgb8"),
    "depth/disparity": ("stereo_msgs/msg/DisparityImage", None),
}


@pytest.fixture(scope="module")
def bag(synth_root: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bags") / "train6"
    assert main(["bag", "make", "--data", str(synth_root), "--split", "train", "--limit", "6", "--out", str(out)]) == 0
    return out


def _read(bag: Path) -> dict[str, list[tuple[object, object]]]:
    topics: dict[str, list[tuple[object, object]]] = {}
    with Reader(bag) as reader:
        for conn, _, raw in reader.messages():
            topics.setdefault(conn.topic, []).append((conn, messages.TYPESTORE.deserialize_cdr(raw, conn.msgtype)))
    return topics


def test_offline_eval_writes_report_plots_and_output_bag(bag: Path, model_path: Path, tmp_path: Path, capsys):
    out, report_dir = tmp_path / "outputs", tmp_path / "report"
    args = ["bag", "eval", "--bag", str(bag), "--model", str(model_path), "--out", str(out), "--report", str(report_dir),
            *TORCH]
    assert main(args) == 0
    assert "# Bag evaluation" in capsys.readouterr().out

    report = json.loads((report_dir / "report.json").read_text())
    assert report["frames"]["evaluated"] == report["frames"]["read"] == report["frames"]["scored"] == 6
    assert report["speed"]["throughput_fps"] > 0 and report["speed"]["drop_rate"] == 0
    assert 0 < report["speed"]["latency_ms"]["p50"] <= report["speed"]["latency_ms"]["p99"]
    metrics = report["metrics"]
    assert 0.0 <= metrics["miou"] <= 1.0 and metrics["disparity_err_px"] >= 0 and metrics["disparity_rmse_px"] >= 0
    assert {"AP", "AP50", "PQ", "iou_road"} <= set(metrics) and "instance_err_px" not in metrics
    summary = (report_dir / "summary.md").read_text()
    assert "miou" in summary and "latency.png" in summary
    pngs = sorted(p.name for p in report_dir.glob("*.png"))
    assert "latency.png" in pngs and "per_class_iou.png" in pngs and any(p.startswith("errors_frame_") for p in pngs)
    assert all((report_dir / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)

    inputs = [m for _, m in _read(bag)["/camera/image"]]
    outputs = _read(out)
    for relative, (msgtype, encoding) in OUTPUT_TOPICS.items():
        msgs = outputs[f"/mtl_perception/{relative}"]
        assert [c.msgtype for c, _ in msgs] == [msgtype] * 6, relative
        for (_, msg), image in zip(msgs, inputs):
            assert msg.header.stamp == image.header.stamp and msg.header.frame_id == image.header.frame_id
            shown = msg.image if msgtype.startswith("stereo") else msg
            assert (shown.height, shown.width) == (image.height, image.width)
            if encoding:
                assert msg.encoding == encoding
    assert len(outputs["/camera/image"]) == 6  # the input travels along for review
    disparity = outputs["/mtl_perception/depth/disparity"][0][1]
    recorded = _read(bag)
    fx = recorded["/camera/camera_info"][0][1].k[0]
    assert disparity.f == pytest.approx(fx)  # outputs at input resolution: the camera's own focal length
    assert disparity.t == pytest.approx(-recorded["/camera/right/camera_info"][0][1].p[3] / fx)


def test_offline_eval_is_deterministic(bag: Path, model_path: Path):
    first, _ = evaluate_offline(bag, model_path, backend="torch", device="cpu", limit=3)
    second, _ = evaluate_offline(bag, model_path, backend="torch", device="cpu", limit=3)
    assert first["frames"]["evaluated"] == 3 and first["metrics"] == second["metrics"]


class _Oracle:
    """A stand-in Pipeline that answers each frame with its ground truth (disparity shifted by ``offset``)."""

    def __init__(self, bag: Path, offset: float = 0.0) -> None:
        with BagInput(bag) as source:
            self.truth = [f.ground_truth for f in source.frames("/camera/image")]
        self.offset = offset
        self.calls = 0
        self.backend = SimpleNamespace(device="cpu")
        self.metadata = SimpleNamespace(camera_fx=None, camera_baseline=None)
        self.available = frozenset({"semantic", "instances", "disparity", "depth", "semantic_color", "instance_color", "depth_color"})

    def __call__(self, rgb, encoding, camera, outputs):
        gt = self.truth[self.calls]
        self.calls += 1
        ids = gt["instance"].astype(np.int64)
        things = (ids >= INSTANCE_ID_DIVISOR) & IS_THING_TRAIN_ID[LABEL_ID_TO_TRAIN_ID[np.minimum(ids // 1000, 255)]]
        unique = np.unique(ids[things])
        instance_map = np.zeros(ids.shape, np.uint16)
        instance_list = []
        for k, gt_id in enumerate(unique, start=1):
            instance_map[ids == gt_id] = k
            instance_list.append(SimpleNamespace(id=k, train_id=int(LABEL_ID_TO_TRAIN_ID[gt_id // 1000]), score=1.0))
        return SimpleNamespace(
            semantic=gt["semantic"], instances=instance_map, instance_list=instance_list,
            disparity=np.nan_to_num(gt["disparity"]) + self.offset, depth=None,
            semantic_color=None, instance_color=None, depth_color=None,
            camera=None, timings={"total": 1.0},
        )


def test_scores_of_known_predictions(bag: Path):
    perfect, examples = evaluate_offline(bag, "oracle", pipeline=_Oracle(bag))
    m = perfect["metrics"]
    assert m["miou"] == pytest.approx(1.0) and m["disparity_err_px"] == 0.0 and m["disparity_rmse_px"] == 0.0
    assert m["AP"] == pytest.approx(1.0) and m["AP50"] == pytest.approx(1.0) and m["PQ"] == pytest.approx(1.0)
    assert m["depth_abs_rel"] == pytest.approx(0.0, abs=1e-6) and m["delta1"] == 1.0  # the bag's right camera gives B
    assert len(examples) == 3

    shifted, _ = evaluate_offline(bag, "oracle", pipeline=_Oracle(bag, offset=1.5))
    assert shifted["metrics"]["disparity_err_px"] == pytest.approx(1.5)
    assert shifted["metrics"]["disparity_rmse_px"] == pytest.approx(1.5)
    assert shifted["metrics"]["miou"] == pytest.approx(1.0)
    assert shifted["metrics"]["depth_abs_rel"] > 0.05 and shifted["metrics"]["delta1"] < 1.0


def _foreign_bag(path: Path, rgb_frames: list[np.ndarray]) -> None:
    """A bag as another team records it: own topic names, bgr8, sqlite3, one frame in yuv422."""
    Image = messages.TYPESTORE.types[messages.IMAGE]
    with Writer(path, version=8, storage_plugin=StoragePlugin.SQLITE3) as writer:
        conn = writer.add_connection("/cam_front/image_raw", messages.IMAGE, typestore=messages.TYPESTORE)
        other = writer.add_connection("/vehicle/speed_image", messages.IMAGE, typestore=messages.TYPESTORE)
        t0 = 1_700_000_000_000_000_000
        for i, rgb in enumerate(rgb_frames):
            header = messages.make_header(t0 + i * 50_000_000, "front_cam")
            msg = messages.image_message(np.ascontiguousarray(rgb[..., ::-1]), "bgr8", header)
            writer.write(conn, t0 + i * 50_000_000, messages.TYPESTORE.serialize_cdr(msg, messages.IMAGE))
            writer.write(other, t0 + i * 50_000_000, messages.TYPESTORE.serialize_cdr(msg, messages.IMAGE))
        h, w = rgb_frames[0].shape[:2]
        header = messages.make_header(t0 + len(rgb_frames) * 50_000_000, "front_cam")
        yuv = Image(header=header, height=h, width=w, encoding="yuv422", is_bigendian=0, step=2 * w,
                    data=np.zeros(2 * w * h, np.uint8))
        writer.write(conn, t0 + len(rgb_frames) * 50_000_000, messages.TYPESTORE.serialize_cdr(yuv, messages.IMAGE))


def test_instances_of_a_published_map_take_classes_from_the_labels_and_scores_from_the_captions():
    car, person = train_id("car"), train_id("person")
    instance_map = np.array([[0, 7, 7], [3, 3, 0]], np.uint16)
    semantic = np.array([[0, car, car], [person, person, 0]], np.uint8)
    relabelled, classes, scores = instances_from_map(instance_map, semantic, {7: 0.8, 9: 0.5})
    assert relabelled.tolist() == [[0, 2, 2], [1, 1, 0]]
    assert classes.tolist() == [person, car]
    assert scores.tolist() == [0.0, 0.8]  # instance 3 has no marker (no finite depth): ranked last
    assert instances_from_map(instance_map, semantic)[2].tolist() == [1.0, 1.0]  # no markers at all


def test_foreign_bag_with_its_own_topics_and_encodings(bag: Path, model_path: Path, tmp_path: Path, capsys):
    with BagInput(bag) as source:
        rgb = [f.rgb for f in source.frames("/camera/image")][:4]
    foreign = tmp_path / "foreign"
    _foreign_bag(foreign, rgb)

    seen = []

    class Recorder(_Oracle):
        def __call__(self, image, encoding, camera, outputs):
            seen.append((image.copy(), encoding, camera))
            return super().__call__(image, encoding, camera, outputs)

    recorder = Recorder(bag)
    report, _ = evaluate_offline(foreign, "recorder", image_topic="/cam_front/image_raw", pipeline=recorder)
    assert len(seen) == 4 and all(np.array_equal(s[0], r) for s, r in zip(seen, rgb))  # bgr8 reached it as RGB
    assert all(s[1] == "rgb" and s[2] is None for s in seen)  # no camera_info in this bag
    assert report["frames"]["skipped_encodings"] == {"yuv422": 1} and report["frames"]["evaluated"] == 4
    assert report["metrics"] == {} and any("no ground-truth topics" in n for n in report["notes"])

    report_dir = tmp_path / "report"
    args = ["bag", "eval", "--bag", str(foreign), "--model", str(model_path), "--image-topic", "/cam_front/image_raw",
            "--report", str(report_dir), *TORCH]
    assert main(args) == 0
    written = json.loads((report_dir / "report.json").read_text())
    assert written["frames"]["evaluated"] == 4 and written["frames"]["skipped_encodings"] == {"yuv422": 1}
    assert "yuv422" in (report_dir / "summary.md").read_text()


def test_missing_topic_lists_the_topics_that_exist(bag: Path, model_path: Path, capsys):
    assert main(["bag", "eval", "--bag", str(bag), "--model", str(model_path), "--image-topic", "/front/image"]) == 2
    err = capsys.readouterr().err
    assert "/front/image not in" in err and "/camera/image (sensor_msgs/msg/Image)" in err and "/gt/semantic" in err
    assert main(["bag", "eval", "--bag", str(bag), "--model", str(model_path), "--image-topic", "/camera/camera_info"]) == 2
    assert "not sensor_msgs/msg/Image" in capsys.readouterr().err


def test_truncated_mcap_is_evaluated_as_far_as_it_goes(synth_root: Path, model_path: Path, tmp_path: Path):
    """A recorder killed mid-write: no summary, no footer, the last chunk cut in half."""
    bag = tmp_path / "cut"
    # 128 x 256 frames fill rosbags' 1 MiB chunks every few frames, so several chunks survive the cut.
    args = ["bag", "make", "--data", str(synth_root), "--split", "train", "--out", str(bag), "--height", "128", "--width", "256"]
    assert main(args) == 0
    mcap = bag / "cut.mcap"
    os.truncate(mcap, int(mcap.stat().st_size * 0.7))
    report_dir = tmp_path / "report"
    assert main(["bag", "eval", "--bag", str(bag), "--model", str(model_path), "--report", str(report_dir), *TORCH]) == 0
    report = json.loads((report_dir / "report.json").read_text())
    total = len(list((synth_root / "leftImg8bit" / "train").glob("*/*.png")))
    assert 1 <= report["frames"]["evaluated"] < total and report["frames"]["expected"] == total
    notes = " ".join(report["notes"])
    assert "truncated" in notes and f"lists {total} images" in notes
    assert math.isfinite(report["metrics"]["miou"])


def test_sqlite3_bag_without_metadata_yaml(synth_root: Path, model_path: Path, tmp_path: Path):
    bag = tmp_path / "nometa"
    assert main(["bag", "make", "--data", str(synth_root), "--out", str(bag), "--storage", "sqlite3"]) == 0
    (bag / "metadata.yaml").unlink()
    report, _ = evaluate_offline(bag, model_path, backend="torch", device="cpu")
    total = len(list((synth_root / "leftImg8bit" / "val").glob("*/*.png")))
    assert report["frames"]["evaluated"] == total
    assert any("no metadata.yaml" in n for n in report["notes"])


def test_unreadable_bags_are_user_errors(tmp_path: Path, model_path: Path, capsys):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "junk.mcap").write_bytes(b"not an mcap file at all")
    for bag, message in ((tmp_path / "absent", "bag not found"), (tmp_path / "junk", "not an MCAP file")):
        assert main(["bag", "eval", "--bag", str(bag), "--model", str(model_path)]) == 2
        assert message in capsys.readouterr().err


def _looped_dataset(synth_root: Path, root: Path, frames: int) -> Path:
    """A split of ``frames`` samples made of the synthetic ones again and again (links, not copies)."""
    sources = sorted((synth_root / "leftImg8bit" / "train").glob("*/*_leftImg8bit.png"))
    suffixes = {"leftImg8bit": "_leftImg8bit.png", "gtFine": ("_gtFine_labelIds.png", "_gtFine_instanceIds.png"),
                "disparity": "_disparity.png", "camera": "_camera.json"}
    for i in range(frames):
        image = sources[i % len(sources)]
        stem, city = image.name[: -len("_leftImg8bit.png")], image.parent.name
        for folder, names in suffixes.items():
            target = root / folder / "train" / "loop"
            target.mkdir(parents=True, exist_ok=True)
            for suffix in (names if isinstance(names, tuple) else (names,)):
                (target / f"loop_000000_{i:06d}{suffix}").symlink_to(synth_root / folder / "train" / city / f"{stem}{suffix}")
    return root


def test_live_replay_too_fast_for_the_node_drops_frames_instead_of_queueing(
    synth_root: Path, model_path: Path, tmp_path: Path, monkeypatch
):
    """The camera (at least) twice as fast as the model: latency stays flat, the node drops frames."""
    pytest.importorskip("rclpy")
    from mtl_perception.bag.live_eval import evaluate_live

    monkeypatch.setenv("ROS_DOMAIN_ID", str(domain_id("bag_eval_overload")))
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    bag = tmp_path / "loop"
    root = _looped_dataset(synth_root, tmp_path / "ds", LIVE_FRAMES)
    assert main(["bag", "make", "--data", str(root), "--split", "train", "--out", str(bag), "--rate", "10"]) == 0
    offline, _ = evaluate_offline(bag, model_path, backend="torch", device="cpu", limit=4)
    # The node also encodes and publishes every output, so it is slower than one offline
    # inference. A publish period of a third of the fastest offline inference, and at most
    # 20 ms, is at least twice too fast even when other processes slowed the offline run down.
    inference_s = min(t["latency_ms"] for t in offline["timeline"]) / 1e3
    rate_factor = 0.1 / min(inference_s / 3, 0.02)

    out = tmp_path / "live_out"
    params = ["device:=cpu", "backend:=torch"]
    report, _ = evaluate_live(bag, model_path, out_bag=out, rate_factor=rate_factor, node_params=params)
    frames, speed = report["frames"], report["speed"]
    assert frames["published"] == LIVE_FRAMES and frames["evaluated"] >= 3
    assert speed["drop_rate"] >= 0.3, (speed, frames)
    latencies = [t["latency_ms"] for t in report["timeline"] if t["latency_ms"] is not None]
    frame_period_ms = 1e3 / speed["throughput_fps"]  # what one delivered frame costs the node
    third = max(len(latencies) // 3, 1)
    early, late = np.median(latencies[:third]), np.median(latencies[-third:])
    assert late <= 2 * early + frame_period_ms, latencies  # a queue would grow by a period per frame
    assert np.percentile(latencies, 90) <= 4 * frame_period_ms, (latencies, frame_period_ms)
    assert report["metrics"]["miou"] is not None and report["frames"]["scored"] == frames["evaluated"]

    recorded = _read(out)
    labels = recorded["/mtl_perception/semantic/labels"]
    input_stamps = {(m.header.stamp.sec, m.header.stamp.nanosec) for _, m in recorded["/camera/image"]}
    assert len(recorded["/camera/image"]) == LIVE_FRAMES and len(labels) >= frames["evaluated"]
    assert all((m.header.stamp.sec, m.header.stamp.nanosec) in input_stamps for _, m in labels)
    assert {"/mtl_perception/points", "/mtl_perception/instance/markers", "/mtl_perception/depth/disparity"} <= set(recorded)


def test_live_replay_scores_what_the_offline_evaluation_scores(tmp_path: Path, monkeypatch):
    """Every frame answered: the live node's published outputs give the offline metrics.

    The AP included: the live side ranks instances by the scores in the marker captions (two
    decimals); with every score 1 it measured 0.142 here against the offline 0.197.
    """
    pytest.importorskip("rclpy")
    from mtl_perception.bag.live_eval import evaluate_live
    from mtl_perception.data.synth import generate_dataset
    from mtl_perception.inference.factory import default_model_path

    shipped = default_model_path()
    monkeypatch.setenv("ROS_DOMAIN_ID", str(domain_id("bag_eval_live_vs_offline")))
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    generate_dataset(tmp_path / "ds", train=0, val=6, height=128, width=256, seed=1)  # the shipped model's size
    bag = tmp_path / "val6"
    assert main(["bag", "make", "--data", str(tmp_path / "ds"), "--split", "val", "--out", str(bag), "--rate", "10"]) == 0
    offline, _ = evaluate_offline(bag, shipped, backend="torch", device="cpu")
    # One frame a second: far slower than the node even on a loaded 2-core machine, so none is dropped.
    live, _ = evaluate_live(bag, shipped, rate_factor=0.1, node_params=["device:=cpu", "backend:=torch"])
    assert live["frames"]["scored"] == offline["frames"]["scored"] == 6
    assert offline["metrics"]["AP"] > 0.1  # instances found, so the ranking matters
    for metric, tolerance in (("miou", 1e-4), ("PQ", 1e-4), ("disparity_err_px", 1e-3), ("depth_abs_rel", 1e-3), ("delta1", 1e-3),
                              ("AP", 1e-3), ("AP50", 1e-3)):
        assert live["metrics"][metric] == pytest.approx(offline["metrics"][metric], abs=tolerance), metric


def test_live_node_that_cannot_start_is_one_clear_error(bag: Path, tmp_path: Path, monkeypatch, capsys):
    pytest.importorskip("rclpy")
    monkeypatch.setenv("ROS_DOMAIN_ID", str(domain_id("bag_eval_node_cannot_start")))
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    assert main(["bag", "eval", "--bag", str(bag), "--model", str(broken), "--live"]) == 2
    err = capsys.readouterr().err
    assert "the perception node exited with status 2" in err and "broken.pt" in err
