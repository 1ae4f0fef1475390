"""The synthetic street-scene generator: Cityscapes format, geometry, determinism, sequences, CLI."""
from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from cityscapesscripts.helpers.labels import id2label
from scipy import ndimage

from mtl_perception.cli import main
from mtl_perception.data import pngio
from mtl_perception.data.labels import CLASS_NAMES, LABEL_ID_TO_TRAIN_ID, SKY_LABEL_ID, label_id
from mtl_perception.data.synth import generate_dataset, generate_sequence, render_image, render_sequence
from mtl_perception.data.cityscapes_camera import CITYSCAPES_BASELINE
from mtl_perception.data.synth.camera import Camera
from mtl_perception.data.synth.furniture import pole
from mtl_perception.data.synth.generate import SceneOptions, sequence_scene
from mtl_perception.data.synth.primitives import Scene, floor
from mtl_perception.data.synth.render import render
from mtl_perception.data.synth.scene import random_lighting
from mtl_perception.data.synth.surfaces import Asphalt, rgb
from mtl_perception.data.synth.vehicles import car

SUFFIXES = ("_leftImg8bit.png", "_gtFine_labelIds.png", "_gtFine_instanceIds.png", "_disparity.png", "_camera.json")
FOLDERS = ("leftImg8bit", "gtFine", "gtFine", "disparity", "camera")
STEM = re.compile(r"^synth\d{3}_\d{6}_\d{6}$")


def sample_files(root: Path, split: str) -> list[tuple[str, list[Path]]]:
    images = sorted((root / "leftImg8bit" / split).glob("*/*_leftImg8bit.png"))
    out = []
    for image in images:
        stem, city = image.name[: -len(SUFFIXES[0])], image.parent.name
        out.append((stem, [root / folder / split / city / f"{stem}{suffix}" for folder, suffix in zip(FOLDERS, SUFFIXES)]))
    return out


def decode_disparity(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (p.astype(np.float64) - 1.0) / 256.0, p > 0


def test_files_follow_the_cityscapes_layout_and_bit_depths(synth_root):
    for split, count in (("train", 8), ("val", 4)):
        samples = sample_files(synth_root, split)
        assert len(samples) == count
        for stem, paths in samples:
            assert STEM.match(stem) and stem.endswith("_000019")
            assert all(p.is_file() for p in paths), paths
            raw = cv2.imread(str(paths[0]), cv2.IMREAD_UNCHANGED)
            assert raw.dtype == np.uint8 and raw.shape == (64, 128, 3)
            # the project's reader, which also serves real Cityscapes, accepts every file
            labels, instances = pngio.read_label_ids(paths[1]), pngio.read_instance_ids(paths[2])
            disparity = pngio.read_disparity(paths[3])
            assert labels.dtype == np.uint8 and instances.dtype == np.uint16 and disparity.dtype == np.uint16
            assert labels.shape == instances.shape == disparity.shape == (64, 128)
            camera = json.loads(paths[4].read_text())
            assert set(camera) == {"extrinsic", "intrinsic"}
            assert set(camera["extrinsic"]) == {"baseline", "pitch", "roll", "x", "y", "yaw", "z"}
            assert set(camera["intrinsic"]) == {"fx", "fy", "u0", "v0"}
            assert 1.2 <= camera["extrinsic"]["z"] <= 1.5 and camera["extrinsic"]["baseline"] > 0
            fx, _ = pngio.read_camera(paths[4])
            assert fx == pytest.approx(2262.52 * 128 / 2048, rel=0.06)  # Cityscapes focal length, scaled


def test_instance_ids_agree_with_label_ids(synth_root):
    for split in ("train", "val"):
        for _, paths in sample_files(synth_root, split):
            labels, instances = pngio.read_label_ids(paths[1]), pngio.read_instance_ids(paths[2])
            assert all(id2label[int(v)].id == v for v in np.unique(labels))
            things = instances >= 1000
            assert np.array_equal(instances[things] // 1000, labels[things])
            assert np.array_equal(instances[~things], labels[~things])  # stuff: the labelId itself
            for prefix in np.unique(instances[things] // 1000):
                assert id2label[int(prefix)].hasInstances
            # every pixel of a thing class belongs to an instance
            thing_class = np.isin(labels, [l for l in range(34) if id2label[l].hasInstances])
            assert np.array_equal(thing_class, things)


def test_disparity_is_the_rendered_geometry(synth_root):
    """Z = fx * B / d within 1 % at every valid pixel, and the road obeys the ground-plane formula."""
    for index, (_, paths) in enumerate(sample_files(synth_root, "train")):
        frame = render_image("train", index, 64, 128, 0)
        written = cv2.imread(str(paths[3]), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(written, frame.disparity_png())
        labels = pngio.read_label_ids(paths[1])
        cam = json.loads(paths[4].read_text())
        fx, baseline = cam["intrinsic"]["fx"], cam["extrinsic"]["baseline"]
        d, valid = decode_disparity(written)
        sky = labels == SKY_LABEL_ID
        assert np.all(written[sky] == 1)  # sky: valid with d = 0
        assert np.all(written[labels == label_id("ego vehicle")] == 0)
        surface = valid & ~sky
        assert surface.mean() > 0.5
        z = fx * baseline / d[surface]
        assert np.all(np.abs(z - frame.depth[surface]) <= 0.01 * frame.depth[surface])
        # independent of the renderer: a road pixel in row v lies on the plane Y = camera height
        pitch, h = cam["extrinsic"]["pitch"], cam["extrinsic"]["z"]
        rows = np.arange(64)[:, None].repeat(128, axis=1)
        yc = (rows - cam["intrinsic"]["v0"]) / cam["intrinsic"]["fy"]
        road = surface & (labels == label_id("road"))
        z_plane = h / (np.cos(pitch) * yc[road] + np.sin(pitch))
        assert road.sum() > 500
        assert np.all(np.abs(fx * baseline / d[road] - z_plane) <= 0.01 * z_plane)


def test_same_seed_gives_identical_bytes_and_another_seed_differs(synth_root, tmp_path):
    generate_dataset(tmp_path / "again", train=2, val=1, height=64, width=128, seed=0, workers=2)
    generate_dataset(tmp_path / "other", train=2, val=1, height=64, width=128, seed=1)
    for split in ("train", "val"):
        again = sample_files(tmp_path / "again", split)
        reference = dict(sample_files(synth_root, split))
        for stem, paths in again:
            for new, old in zip(paths, reference[stem]):
                assert new.read_bytes() == old.read_bytes(), new
        for (_, paths), (_, other) in zip(again, sample_files(tmp_path / "other", split)):
            assert paths[0].read_bytes() != other[0].read_bytes()
            assert paths[1].read_bytes() != other[1].read_bytes()


def test_one_rig_baseline_for_every_scene_of_a_dataset(synth_root, tmp_path):
    """A real rig has one baseline: every camera JSON of a dataset carries the same one (the
    Cityscapes value by default, --baseline's otherwise), in both splits."""
    def baselines(root):
        return {json.loads(p[4].read_text())["extrinsic"]["baseline"] for split in ("train", "val") for _, p in sample_files(root, split)}

    assert baselines(synth_root) == {CITYSCAPES_BASELINE}
    assert main(["synth", "--out", str(tmp_path / "rig"), "--train", "3", "--val", "1", "--height", "32", "--width", "64",
                 "--baseline", "0.3", "--quiet", "--workers", "1"]) == 0
    assert baselines(tmp_path / "rig") == {0.3}


def test_the_baseline_changes_disparity_and_nothing_else():
    """Images, labels and instances do not depend on the rig's baseline (the scene draws are
    those of the per-scene baseline it replaced); disparity scales with it."""
    for index in range(3):
        a = render_image("train", index, 64, 128, 5)
        b = render_image("train", index, 64, 128, 5, SceneOptions(baseline=0.4))
        for name in ("rgb", "label_ids", "instance_ids", "depth"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
        both = a.disparity_valid & b.disparity_valid
        np.testing.assert_allclose(b.disparity[both], a.disparity[both] * 0.4 / CITYSCAPES_BASELINE, rtol=1e-5)


def test_rare_rounds_add_thin_and_rare_objects():
    """--rare adds signs, traffic lights, persons and bicycles; 0 is the default mix exactly."""
    thin = [label_id(n) for n in ("traffic sign", "traffic light", "person", "bicycle", "rider")]
    counts = {0: 0, 2: 0}
    for index in range(4):
        default = render_image("train", index, 64, 128, 2)
        np.testing.assert_array_equal(render_image("train", index, 64, 128, 2, SceneOptions(rare=0)).rgb, default.rgb)
        for rare in counts:
            counts[rare] += int(np.isin(render_image("train", index, 64, 128, 2, SceneOptions(rare=rare)).label_ids, thin).sum())
    assert counts[2] > 1.5 * counts[0], counts


def test_sequence_frames_drive_forward(tmp_path):
    frames = 5
    assert generate_sequence(tmp_path, frames=frames, train=1, val=0, height=64, width=128, seed=3) == frames
    stems = [stem for stem, _ in sample_files(tmp_path, "train")]
    assert stems == [f"synth000_000000_{f:06d}" for f in range(frames)]
    for _, paths in sample_files(tmp_path, "train"):
        assert all(p.is_file() for p in paths)  # ground truth for every frame

    scene, camera = sequence_scene("train", 0, frames, 64, 128, 3)
    static = {q.gt_id for q in scene.quads if q.instance and q.velocity == (0.0, 0.0)}
    moving = {q.gt_id for q in scene.quads if q.instance and q.velocity != (0.0, 0.0)}
    static -= moving
    first, last = (frame for _, frame in render_sequence("train", 0, frames, 64, 128, 3, [0, frames - 1]))
    grew = []
    for ident in static:
        a, b = first.instance_ids == ident, last.instance_ids == ident
        if a.sum() >= 4 and b.sum() >= 4 and (first.disparity_valid & a).any() and (last.disparity_valid & b).any():
            grew.append(np.median(last.disparity[b & last.disparity_valid]) > np.median(first.disparity[a & first.disparity_valid]))
    assert len(grew) >= 2 and all(grew)
    # the camera moved forward by frames - 1 steps: far static geometry gets closer by exactly that
    road = (first.label_ids == label_id("road")) & (last.label_ids == label_id("road"))
    assert np.allclose(first.depth[road], last.depth[road])  # the ground plane looks the same from every point


def test_an_occluded_instance_keeps_one_id():
    """A pole in front of a car cuts it in two; both parts carry the car's single id."""
    rng = np.random.default_rng(5)
    camera = Camera(width=256, height=128, fx=280.0, fy=280.0, u0=128.0, v0=64.0, mount_height=1.3, pitch=0.02, baseline=0.21)
    quads, _, _ = car(rng, 0.0, 10.0, True, label_id("car") * 1000 + 7)
    quads.append(pole(0.0, 6.0, 4.0, 0.25, 0.0, rgb(0.4, 0.4, 0.4)))
    quads.append(floor(-20, 20, -5, 200, 0.0, label_id("road"), Asphalt(rgb(0.3, 0.3, 0.3), -20, -5, 1.0)))
    frame = render(Scene(quads, [], random_lighting(rng), None, 1.0), camera)
    car_pixels = frame.label_ids == label_id("car")
    assert set(np.unique(frame.instance_ids[car_pixels])) == {26007}
    parts, count = ndimage.label(car_pixels)
    sizes = np.bincount(parts.ravel())[1:]
    assert count >= 2 and np.sort(sizes)[-2] > 50  # two big halves, left and right of the pole
    assert (frame.label_ids[64, 120:136] == label_id("pole")).any()


def test_all_train_classes_appear_across_a_dataset():
    seen = np.zeros(256, dtype=bool)
    for index in range(40):
        seen[LABEL_ID_TO_TRAIN_ID[render_image("train", index, 128, 256, 0).label_ids]] = True
    missing = [name for i, name in enumerate(CLASS_NAMES) if not seen[i]]
    assert not missing


@pytest.mark.parametrize(
    "args, message",
    [
        (["--train", "-1"], "--train"),
        (["--val", "-3"], "--val"),
        (["--height", "8"], "at least"),
        (["--sequence", "--frames", "0"], "--frames"),
        (["--workers", "0"], "--workers"),
        (["--seed", "-5"], "--seed"),
        (["--rare", "-1"], "--rare"),
        (["--baseline", "0"], "--baseline"),
    ],
)
def test_cli_user_errors_exit_2_with_one_line(tmp_path, capsys, args, message):
    assert main(["synth", "--out", str(tmp_path / "out"), "--quiet", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


def test_cli_refuses_an_output_path_that_is_a_file(tmp_path, capsys):
    target = tmp_path / "a_file"
    target.write_text("x")
    assert main(["synth", "--out", str(target), "--train", "1", "--val", "0", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(target) in err


def test_cli_writes_a_dataset(tmp_path, capsys):
    out = tmp_path / "ds"
    assert main(["synth", "--out", str(out), "--train", "2", "--val", "1", "--height", "32", "--width", "64", "--seed", "4", "--quiet", "--workers", "1"]) == 0
    assert "3 images" in capsys.readouterr().out
    assert len(sample_files(out, "train")) == 2 and len(sample_files(out, "val")) == 1
