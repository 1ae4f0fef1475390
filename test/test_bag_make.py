"""``mtl-perception bag make``: dataset splits to rosbag2 bags, checked against the dataset files.

Every topic is read back with ``rosbags`` and compared with the PNGs and camera JSON it came
from; the CDR bytes are also decoded by rclpy's own type support, which is what ``ros2 bag
play`` hands to subscribers.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from rosbags.rosbag2 import Reader
from ruamel.yaml import YAML

from mtl_perception.bag import messages
from mtl_perception.bag.reader import BagInput
from mtl_perception.bag.topics import DEFAULT_START_TIME_S
from mtl_perception.cli import main
from mtl_perception.data.labels import LABEL_ID_TO_TRAIN_ID, SKY_LABEL_ID

SPLIT = "val"


def _samples(root: Path, split: str = SPLIT) -> list[dict[str, Path]]:
    out = []
    for image in sorted((root / "leftImg8bit" / split).glob("*/*_leftImg8bit.png")):
        stem, city = image.name[: -len("_leftImg8bit.png")], image.parent.name
        out.append({
            "image": image,
            "labels": root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png",
            "ids": root / "gtFine" / split / city / f"{stem}_gtFine_instanceIds.png",
            "disparity": root / "disparity" / split / city / f"{stem}_disparity.png",
            "camera": root / "camera" / split / city / f"{stem}_camera.json",
        })
    return out


def _read(bag: Path) -> dict[str, list[tuple[int, object]]]:
    """Every message of the bag, deserialised, by topic: (log time, message)."""
    out: dict[str, list[tuple[int, object]]] = {}
    with Reader(bag) as reader:
        for conn, t, raw in reader.messages():
            out.setdefault(conn.topic, []).append((t, messages.TYPESTORE.deserialize_cdr(raw, conn.msgtype)))
    return out


@pytest.fixture(scope="module")
def mcap_bag(synth_root: Path, tmp_path_factory) -> Path:
    bag = tmp_path_factory.mktemp("make") / "val_bag"
    assert main(["bag", "make", "--data", str(synth_root), "--split", SPLIT, "--out", str(bag), "--rate", "10"]) == 0
    return bag


def test_bag_holds_the_dataset_exactly(mcap_bag: Path, synth_root: Path):
    samples = _samples(synth_root)
    topics = _read(mcap_bag)
    assert sorted(topics) == sorted([
        "/camera/image", "/camera/camera_info", "/camera/right/camera_info", "/gt/semantic", "/gt/instance", "/gt/disparity",
    ])
    t0 = int(DEFAULT_START_TIME_S * 1e9)
    for topic, msgs in topics.items():
        assert len(msgs) == len(samples), topic
        for i, (log_time, msg) in enumerate(msgs):
            assert log_time == t0 + i * 100_000_000 == messages.stamp_ns(msg.header), topic  # 10 Hz
            assert msg.header.frame_id == ("camera_right_optical_frame" if "right" in topic else "camera_optical_frame")
    for i, s in enumerate(samples):
        image = topics["/camera/image"][i][1]
        assert image.encoding == "rgb8"
        rgb = cv2.cvtColor(cv2.imread(str(s["image"])), cv2.COLOR_BGR2RGB)
        np.testing.assert_array_equal(messages.decode_image(image), rgb)

        labels = cv2.imread(str(s["labels"]), cv2.IMREAD_UNCHANGED)
        semantic = topics["/gt/semantic"][i][1]
        assert semantic.encoding == "mono8"
        np.testing.assert_array_equal(messages.decode_image(semantic), LABEL_ID_TO_TRAIN_ID[labels])

        instance = topics["/gt/instance"][i][1]
        assert instance.encoding == "mono16"
        np.testing.assert_array_equal(messages.decode_image(instance), cv2.imread(str(s["ids"]), cv2.IMREAD_UNCHANGED))

        raw = cv2.imread(str(s["disparity"]), cv2.IMREAD_UNCHANGED).astype(np.float64)
        disparity = messages.decode_image(topics["/gt/disparity"][i][1])
        sky = labels == SKY_LABEL_ID
        expected = np.where(raw > 0, (raw - 1) / 256, np.nan)
        expected[sky] = 0.0
        np.testing.assert_allclose(disparity, expected, rtol=1e-6, equal_nan=True)
        assert (~np.isnan(disparity)).any() and (disparity[sky] == 0).all()

        cam = json.loads(s["camera"].read_text())
        fx, fy, u0, v0 = (cam["intrinsic"][k] for k in ("fx", "fy", "u0", "v0"))
        info = topics["/camera/camera_info"][i][1]
        assert (info.height, info.width) == rgb.shape[:2]
        assert info.distortion_model == "plumb_bob" and not info.d.any()
        np.testing.assert_allclose(info.k, [fx, 0, u0, 0, fy, v0, 0, 0, 1])
        np.testing.assert_allclose(info.p, [fx, 0, u0, 0, 0, fy, v0, 0, 0, 0, 1, 0])
        right = topics["/camera/right/camera_info"][i][1]
        assert -right.p[3] / right.p[0] == pytest.approx(cam["extrinsic"]["baseline"])


def test_metadata_is_standard_rosbag2_and_rclpy_decodes_the_messages(mcap_bag: Path):
    meta = YAML(typ="safe").load((mcap_bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["storage_identifier"] == "mcap" and meta["version"] == 9
    assert [p for p in meta["relative_file_paths"]] == ["val_bag.mcap"]
    by_topic = {t["topic_metadata"]["name"]: t for t in meta["topics_with_message_count"]}
    assert by_topic["/camera/image"]["topic_metadata"]["type"] == "sensor_msgs/msg/Image"
    assert by_topic["/camera/image"]["topic_metadata"]["serialization_format"] == "cdr"
    assert by_topic["/camera/image"]["topic_metadata"]["type_description_hash"].startswith("RIHS01_")

    rclpy_serialization = pytest.importorskip("rclpy.serialization")
    from sensor_msgs.msg import CameraInfo, Image

    with Reader(mcap_bag) as reader:
        conns = {c.topic: c for c in reader.connections}
        for conn, _, raw in reader.messages([conns["/gt/disparity"], conns["/camera/camera_info"]]):
            if conn.topic == "/gt/disparity":
                msg = rclpy_serialization.deserialize_message(bytes(raw), Image)
                assert msg.encoding == "32FC1" and len(msg.data) == msg.step * msg.height == msg.width * 4 * msg.height
            else:
                msg = rclpy_serialization.deserialize_message(bytes(raw), CameraInfo)
                assert msg.k[0] > 0 and msg.distortion_model == "plumb_bob"


def test_sqlite3_storage_and_resize_scale_intrinsics_and_disparity(mcap_bag: Path, synth_root: Path, tmp_path: Path):
    bag = tmp_path / "small"
    args = ["bag", "make", "--data", str(synth_root), "--out", str(bag), "--storage", "sqlite3", "--height", "32", "--width", "64"]
    assert main(args) == 0
    assert (bag / "small.db3").is_file()
    full, small = _read(mcap_bag), _read(bag)
    for (_, big_info), (_, info) in zip(full["/camera/camera_info"], small["/camera/camera_info"]):
        assert (info.height, info.width) == (32, 64)
        # Half size, pixel centres at integer coordinates: f / 2, c' = (c + 0.5) / 2 - 0.5.
        np.testing.assert_allclose(info.k[[0, 4]], big_info.k[[0, 4]] / 2)
        np.testing.assert_allclose(info.k[[2, 5]], (big_info.k[[2, 5]] + 0.5) / 2 - 0.5)
    for (_, big), (_, msg) in zip(full["/gt/disparity"], small["/gt/disparity"]):
        d_big, d = messages.decode_image(big), messages.decode_image(msg)
        np.testing.assert_allclose(d, d_big[1::2, 1::2] / 2, equal_nan=True)  # nearest source pixel, half width
    for _, msg in small["/gt/instance"] + small["/gt/semantic"] + small["/camera/image"]:
        assert (msg.height, msg.width) == (32, 64)


def test_sequence_mode_writes_ground_truth_only_where_it_exists(synth_root: Path, tmp_path: Path):
    """A leftImg8bit_sequence snippet of five frames; the middle one is annotated (as in Cityscapes)."""
    root = tmp_path / "ds"
    shutil.copytree(synth_root, root)
    sample = _samples(root)[0]
    frames = [f"seqcity_000007_{k:06d}" for k in range(17, 22)]
    position = 2
    files = [  # (file of the sample, folder, suffix); the annotated frame also gets ground truth and camera
        (sample["image"], "leftImg8bit_sequence", "_leftImg8bit.png"),
        (sample["image"], "leftImg8bit", "_leftImg8bit.png"),
        (sample["labels"], "gtFine", "_gtFine_labelIds.png"),
        (sample["ids"], "gtFine", "_gtFine_instanceIds.png"),
        (sample["disparity"], "disparity", "_disparity.png"),
        (sample["camera"], "camera", "_camera.json"),
    ]
    for source, folder, suffix in files:
        target = root / folder / SPLIT / "seqcity"
        target.mkdir(parents=True, exist_ok=True)
        for i, name in enumerate(frames):
            if folder == "leftImg8bit_sequence" or i == position:
                shutil.copy(source, target / f"{name}{suffix}")
    bag = tmp_path / "seq"
    assert main(["bag", "make", "--data", str(root), "--sequence", "--out", str(bag)]) == 0
    topics = _read(bag)
    assert len(topics["/camera/image"]) == len(topics["/camera/camera_info"]) == 5
    annotated_stamp = messages.stamp_ns(topics["/camera/image"][position][1].header)
    assert [messages.stamp_ns(m.header) for _, m in topics["/gt/semantic"]] == [annotated_stamp]
    with BagInput(bag) as source:
        frames_read = list(source.frames("/camera/image"))
    expected = [["disparity", "instance", "semantic"] if i == position else [] for i in range(5)]
    assert [sorted(f.ground_truth) for f in frames_read] == expected


def test_user_mistakes_exit_2_with_one_line(mcap_bag: Path, synth_root: Path, tmp_path: Path, capsys):
    cases = [
        (["--data", str(synth_root), "--out", str(mcap_bag)], "exists"),
        (["--data", str(tmp_path / "nothing"), "--out", str(tmp_path / "b1")], "dataset root not found"),
        (["--data", str(synth_root), "--out", str(tmp_path / "b2"), "--height", "32"], "--height and --width"),
        (["--data", str(synth_root), "--out", str(tmp_path / "b3"), "--rate", "0"], "--rate"),
        (["--data", str(synth_root), "--out", str(tmp_path / "b4"), "--sequence"], "leftImg8bit_sequence"),
    ]
    for args, message in cases:
        assert main(["bag", "make", *args]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert not any(p.name.startswith(".b") for p in tmp_path.iterdir())  # no staging folder left behind
