"""Cityscapes-layout reader: targets against hand-computed values, augmentation, cache, errors.

The scene is hand-made at 16 x 32 (H0 x W0) so every expected number can be worked out on
paper. With the pixel-centre convention of ``targets.py``, output pixel u at half resolution
reads source column 2u + 1 and a full-resolution coordinate x maps to (x + 0.5) / 2 - 0.5.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from mtl_perception.data.augment import AugmentConfig, AugmentParams, color_jitter, draw
from mtl_perception.data.cityscapes import CityscapesDataset
from mtl_perception.data.labels import label_id, train_id
from mtl_perception.data.targets import View, instance_centroids
from mtl_perception.errors import ConfigError, DatasetError

H0, W0 = 16, 32
FX, BASELINE = 40.0, 0.2
CITY = "aachen"
SKY, ROAD, POLE, CAR, PERSON, CARAVAN = (label_id(n) for n in ("sky", "road", "pole", "car", "person", "caravan"))
CAR_ID, PERSON_ID, CARAVAN_ID = CAR * 1000 + 1, PERSON * 1000 + 5, CARAVAN * 1000 + 1


def scene_arrays() -> dict[str, np.ndarray]:
    """The hand-made scene at full resolution."""
    labels = np.full((H0, W0), ROAD, np.uint8)
    labels[0:4] = SKY
    labels[8:12, 4:8] = CAR  # car, left part
    labels[8:12, 10:14] = CAR  # car, right part ...
    labels[8:12, 8:10] = POLE  # ... split by a pole in front of it
    labels[5:8, 20:23] = PERSON
    labels[12:16, 24:32] = CAR  # crowd of cars: instance id 26 (< 1000)
    labels[12:16, 0:4] = CARAVAN  # has instances but no train id
    ids = labels.astype(np.uint16)
    ids[(labels == CAR) & (np.arange(W0) < 16)[None, :]] = CAR_ID
    ids[labels == PERSON] = PERSON_ID
    ids[labels == CARAVAN] = CARAVAN_ID
    # Disparity: d = col + 1 at full resolution, so output pixel u at half width has d = u + 1.
    disparity = np.tile((1 + 256 * (np.arange(W0) + 1)).astype(np.uint16), (H0, 1))
    disparity[1] = 0  # sky, invalid in the PNG ...
    disparity[3] = 5000  # ... or with a value: sky is valid with d = 0 either way
    disparity[12:14, 16:20] = 0  # sampled pixels (13, 17), (13, 19) stay valid, their neighbours not
    disparity[13, [17, 19]] = 1 + 256 * 7
    disparity[15, [17, 19]] = 0  # sampled pixels invalid, their neighbours valid
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (H0, W0, 3), dtype=np.uint8)
    return {"image": image, "labels": labels, "ids": ids, "disparity": disparity}


def paths(root: Path, split: str = "train", stem: str = f"{CITY}_000000_000019") -> dict[str, Path]:
    base = {k: root / k / split / CITY for k in ("leftImg8bit", "gtFine", "disparity", "camera")}
    return {
        "image": base["leftImg8bit"] / f"{stem}_leftImg8bit.png",
        "labels": base["gtFine"] / f"{stem}_gtFine_labelIds.png",
        "ids": base["gtFine"] / f"{stem}_gtFine_instanceIds.png",
        "disparity": base["disparity"] / f"{stem}_disparity.png",
        "camera": base["camera"] / f"{stem}_camera.json",
    }


def write_scene(root: Path, split: str = "train", stem: str = f"{CITY}_000000_000019") -> dict[str, Path]:
    p = paths(root, split, stem)
    for path in p.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    a = scene_arrays()
    cv2.imwrite(str(p["image"]), cv2.cvtColor(a["image"], cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(p["labels"]), a["labels"])
    # Written by Pillow ("I;16"), as cityscapesscripts' tools do, to check their PNGs read back.
    Image.fromarray(a["ids"]).save(p["ids"])
    cv2.imwrite(str(p["disparity"]), a["disparity"])
    camera = {"extrinsic": {"baseline": BASELINE, "pitch": 0.0}, "intrinsic": {"fx": FX, "fy": FX, "u0": 16, "v0": 8}}
    p["camera"].write_text(json.dumps(camera))
    return p


@pytest.fixture
def scene(tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    return tmp_path / "cs", write_scene(tmp_path / "cs")


def numpy_sample(dataset: CityscapesDataset, params: AugmentParams | None = None) -> dict:
    return {k: (v.numpy() if isinstance(v, torch.Tensor) else v) for k, v in dataset.sample(0, params).items()}


# --- targets at half resolution, hand-computed ------------------------------------------------


def test_sample_layout_and_types(scene):
    root, _ = scene
    s = CityscapesDataset(root, "train", (8, 16))[0]
    assert s["stem"] == f"{CITY}_000000_000019"
    shapes = {k: (tuple(v.shape), v.dtype) for k, v in s.items() if isinstance(v, torch.Tensor)}
    assert shapes == {
        "image": ((3, 8, 16), torch.float32),
        "semantic": ((8, 16), torch.int64),
        "instance": ((2, 8, 16), torch.float32),
        "instance_mask": ((8, 16), torch.bool),
        "instance_ids": ((8, 16), torch.int64),
        "disparity": ((8, 16), torch.float32),
        "disparity_mask": ((8, 16), torch.bool),
        "fx": ((), torch.float32),
        "baseline": ((), torch.float32),
    }


def test_semantic_and_camera(scene):
    root, _ = scene
    s = numpy_sample(CityscapesDataset(root, "train", (8, 16)))
    assert (s["semantic"][0:2] == train_id("sky")).all()
    assert s["semantic"][4, 4] == train_id("pole")  # source (9, 9)
    assert s["semantic"][4, 2] == train_id("car")
    assert s["semantic"][2, 10] == train_id("person")
    assert (s["semantic"][6:8, 0:2] == 255).all()  # caravan: no train id
    assert (s["semantic"][6:8, 12:16] == train_id("car")).all()  # crowd
    assert s["fx"] == pytest.approx(FX * 16 / 32)  # fx scales with the width
    assert s["baseline"] == pytest.approx(BASELINE)  # metres, unchanged


def test_centroids_full_resolution_split_instance_keeps_one_centroid():
    c = instance_centroids(scene_arrays()["ids"])
    table = {int(i): (x, y) for i, x, y in zip(c.ids, c.cx, c.cy)}
    # Car: columns 4..7 and 10..13 (mean 8.5, under the pole), rows 8..11 (mean 9.5).
    assert table[CAR_ID] == pytest.approx((8.5, 9.5))
    assert table[PERSON_ID] == pytest.approx((21.0, 6.0))
    assert table[CARAVAN_ID] == pytest.approx((1.5, 13.5))
    assert set(table) == {CAR_ID, PERSON_ID, CARAVAN_ID}  # the crowd (id 26) has no centroid


def expected_instance_half_resolution() -> tuple[np.ndarray, np.ndarray]:
    """Hand-computed (vectors, mask) at 8 x 16 without flip."""
    vectors = np.zeros((2, 8, 16), np.float32)
    mask = np.zeros((8, 16), bool)
    # Car centroid (8.5, 9.5) -> ((8.5 + .5) / 2 - .5, (9.5 + .5) / 2 - .5) = (4.0, 4.5).
    # Its pixels: rows v = 4, 5 (source 9, 11); columns u = 2, 3, 5, 6 (source 5, 7, 11, 13);
    # u = 4 reads source column 9, the pole. Both parts point to the one centroid.
    for v in (4, 5):
        for u in (2, 3, 5, 6):
            vectors[:, v, u] = (4.0 - u, 4.5 - v)
            mask[v, u] = True
    # Person centroid (21, 6) -> (10.25, 2.75); pixels (v, u) = (2, 10), (3, 10).
    for v in (2, 3):
        vectors[:, v, 10] = (10.25 - 10, 2.75 - v)
        mask[v, 10] = True
    return vectors, mask


def test_instance_vectors_after_resize(scene):
    root, _ = scene
    s = numpy_sample(CityscapesDataset(root, "train", (8, 16)))
    vectors, mask = expected_instance_half_resolution()
    np.testing.assert_array_equal(s["instance_mask"], mask)  # no crowd (id 26), no caravan
    np.testing.assert_allclose(s["instance"], vectors, atol=1e-6)
    assert s["instance_ids"][4, 2] == CAR_ID and s["instance_ids"][4, 6] == CAR_ID
    assert s["instance_ids"][7, 14] == CAR  # crowd keeps its raw id (< 1000) for AP evaluation
    assert s["instance_ids"][7, 0] == CARAVAN_ID


def test_instance_vectors_after_flip(scene):
    root, _ = scene
    ds = CityscapesDataset(root, "train", (8, 16))
    plain = numpy_sample(ds)
    flipped = numpy_sample(ds, AugmentParams(View(scaled=(8, 16), flip=True)))
    # Hand-computed: the car centroid mirrors to x = 15 - 4 = 11, its pixels to u' = 15 - u.
    for v in (4, 5):
        for u in (2, 3, 5, 6):
            assert tuple(flipped["instance"][:, v, 15 - u]) == pytest.approx((11 - (15 - u), 4.5 - v))
    # Recomputed vectors agree with mirroring the arrays and negating dx.
    np.testing.assert_allclose(flipped["instance"][0], -plain["instance"][0][:, ::-1], atol=1e-6)
    np.testing.assert_allclose(flipped["instance"][1], plain["instance"][1][:, ::-1], atol=1e-6)
    for key in ("image", "semantic", "instance_mask", "instance_ids", "disparity", "disparity_mask"):
        np.testing.assert_array_equal(flipped[key], plain[key][..., ::-1])


def test_disparity_scaling_sky_and_validity(scene):
    root, _ = scene
    s = numpy_sample(CityscapesDataset(root, "train", (8, 16)))
    d, valid = s["disparity"], s["disparity_mask"]
    # Sky rows: valid with d = 0, whether the PNG said 0 (row 1) or 5000 (row 3).
    assert valid[0:2].all() and (d[0:2] == 0).all()
    # Road: p = 1 + 256 (c + 1) at source column c = 2u + 1 -> (p - 1) / 256 * 16 / 32 = u + 1.
    np.testing.assert_allclose(d[2], np.arange(16) + 1.0)
    assert valid[2].all()
    # Sampled pixels valid (p = 1 + 256 * 7), every neighbour invalid: exactly 7 * 16 / 32.
    assert valid[6, 8] and valid[6, 9] and d[6, 8] == pytest.approx(3.5) and d[6, 9] == pytest.approx(3.5)
    # Sampled pixels invalid, every neighbour valid: invalid, d = 0 (no averaging of neighbours).
    assert not valid[7, 8] and not valid[7, 9] and d[7, 8] == 0 and d[7, 9] == 0


def test_disparity_formula_at_another_width(scene):
    root, _ = scene
    s = numpy_sample(CityscapesDataset(root, "train", (4, 8)))
    p = scene_arrays()["disparity"]
    # Quarter resolution: output (v, u) reads source (4v + 2, 4u + 2).
    for v, u in ((1, 0), (1, 7), (2, 3)):
        assert s["disparity"][v, u] == pytest.approx((p[4 * v + 2, 4 * u + 2] - 1) / 256 * 8 / 32)
    assert s["fx"] == pytest.approx(FX * 8 / 32)


def test_zoom_crop_scales_vectors_disparity_and_fx(scene):
    root, _ = scene
    ds = CityscapesDataset(root, "train", (8, 16))
    # Zoom x2 (back to full resolution) and crop at (4, 8): car centroid (8.5, 9.5) -> (0.5, 5.5).
    s = numpy_sample(ds, AugmentParams(View(scaled=(16, 32), offset=(4, 8))))
    for v in range(4, 8):
        for u in range(2, 6):
            assert tuple(s["instance"][:, v, u]) == pytest.approx((0.5 - u, 5.5 - v))
    assert s["disparity"][2, 5] == pytest.approx(8 + 5 + 1)  # d = column + 1 at full width
    assert s["fx"] == pytest.approx(FX)


def test_shrink_pads_without_targets(scene):
    root, _ = scene
    ds = CityscapesDataset(root, "train", (8, 16))
    # Scale 0.5 of the output (4 x 8) placed at rows 2..5, columns 4..11 of the window.
    s = numpy_sample(ds, AugmentParams(View(scaled=(4, 8), offset=(-2, -4))))
    inside = np.zeros((8, 16), bool)
    inside[2:6, 4:12] = True
    assert (s["semantic"][~inside] == 255).all() and not s["disparity_mask"][~inside].any()
    assert not s["instance_mask"][~inside].any() and (s["instance_ids"][~inside] == 0).all()
    # The 4 x 8 image reads source rows 4r + 2, columns 4c + 2: the person at (6, 22), the car
    # at (10, 6) and (10, 10). Car centroid (8.5, 9.5) -> (9 * 8 / 32 - .5 + 4, 10 * 4 / 16 - .5 + 2)
    # = (5.75, 4.0); person centroid (21, 6) -> (21.5 / 4 - .5 + 4, 6.5 / 4 - .5 + 2) = (8.875, 3.125).
    assert np.argwhere(s["instance_mask"]).tolist() == [[3, 9], [4, 5], [4, 6]]
    assert tuple(s["instance"][:, 3, 9]) == pytest.approx((-0.125, 0.125))
    assert tuple(s["instance"][:, 4, 5]) == pytest.approx((0.75, 0.0))
    assert tuple(s["instance"][:, 4, 6]) == pytest.approx((-0.25, 0.0))
    assert s["fx"] == pytest.approx(FX * 8 / 32)


# --- random augmentation ----------------------------------------------------------------------

AUGMENT = {"scale": [0.75, 1.5], "flip": True, "color_jitter": 0.2}


def test_random_augmentation_keeps_targets_consistent(scene):
    root, _ = scene
    ds = CityscapesDataset(root, "train", (8, 16), augment=AUGMENT)
    p_values = set((scene_arrays()["disparity"].astype(np.int64) - 1).ravel().tolist())
    rng = np.random.default_rng(1)
    flips = set()
    for _ in range(20):
        params = draw(ds.augment, ds.size, rng)
        s = numpy_sample(ds, params)
        hs, ws = params.view.scaled
        flips.add(params.view.flip)
        assert s["fx"] == pytest.approx(FX * ws / W0)
        # Votes of each instance land on its full-resolution centroid mapped into the view.
        v, u = np.nonzero(s["instance_mask"])
        votes_x, votes_y = u + s["instance"][0, v, u], v + s["instance"][1, v, u]
        for iid, (cx, cy) in ((CAR_ID, (8.5, 9.5)), (PERSON_ID, (21.0, 6.0))):
            sel = s["instance_ids"][v, u] == iid
            ex = (cx + 0.5) * ws / W0 - 0.5 - params.view.offset[1]
            ex = 15 - ex if params.view.flip else ex
            ey = (cy + 0.5) * hs / H0 - 0.5 - params.view.offset[0]
            np.testing.assert_allclose(votes_x[sel], ex, atol=1e-4)
            np.testing.assert_allclose(votes_y[sel], ey, atol=1e-4)
        # Disparity scales exactly as fx: d / fx * FX * 256 is a source (p - 1).
        depth = s["disparity_mask"] & (s["semantic"] != train_id("sky"))
        raw = s["disparity"][depth] / s["fx"] * FX * 256
        np.testing.assert_allclose(raw, np.rint(raw), atol=1e-2)
        assert set(np.rint(raw).astype(np.int64).tolist()) <= p_values
        # Same draw without the flip: everything mirrors, dx changes sign.
        same_view = View(params.view.scaled, params.view.offset, flip=False)
        unflipped = numpy_sample(ds, AugmentParams(same_view, *_colour(params)))
        if params.view.flip:
            np.testing.assert_allclose(s["instance"][0], -unflipped["instance"][0][:, ::-1], atol=1e-5)
            np.testing.assert_array_equal(s["disparity"], unflipped["disparity"][:, ::-1])
    assert flips == {True, False}


def _colour(params: AugmentParams) -> tuple[float, float, float]:
    return params.brightness, params.contrast, params.saturation


def test_augmentation_follows_torch_seed_and_evaluation_is_deterministic(scene):
    root, _ = scene
    train = CityscapesDataset(root, "train", (8, 16), augment=AUGMENT)
    torch.manual_seed(3)
    a = [train[0]["image"] for _ in range(4)]
    torch.manual_seed(3)
    b = [train[0]["image"] for _ in range(4)]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(a[0], x) for x in a[1:])
    evaluation = CityscapesDataset(root, "train", (8, 16))
    assert torch.equal(evaluation[0]["image"], evaluation[0]["image"])


def test_color_jitter_hand_values():
    image = np.array([[[100, 200, 50]]], np.uint8)
    assert color_jitter(image, AugmentParams(View((1, 1)), brightness=1.5)).tolist() == [[[150, 255, 75]]]
    grey = color_jitter(image, AugmentParams(View((1, 1)), saturation=0.0))
    assert len(set(grey[0, 0].tolist())) == 1  # fully desaturated
    flat = color_jitter(np.array([[[0, 0, 0]], [[200, 200, 200]]], np.uint8), AugmentParams(View((1, 1)), contrast=0.0))
    assert flat.tolist() == [[[100] * 3], [[100] * 3]]  # contrast 0: the mean grey
    assert color_jitter(image, AugmentParams(View((1, 1)))) is image


@pytest.mark.parametrize(
    "config, message",
    [
        ({"scale": [1.5, 0.75]}, "0 < min <= max"),
        ({"scale": 2}, r"\[min, max\]"),
        ({"flip": "yes"}, "flip must be true or false"),
        ({"color_jitter": 1.5}, r"color_jitter must be a number in \[0, 1\)"),
        ({"rotate": 10}, r"unknown key\(s\) \['rotate'\]"),
    ],
)
def test_augment_config_errors(config, message):
    with pytest.raises(ConfigError, match=message):
        AugmentConfig.from_dict(config)


def test_augment_config_off_values():
    assert AugmentConfig.from_dict({"scale": None, "flip": False, "color_jitter": None}) == AugmentConfig()
    assert AugmentConfig.from_dict(None) == AugmentConfig()


def test_synthetic_dataset_targets_are_consistent(synth_root):
    """The reader on the synthetic generator's output: votes meet, disparity follows fx."""
    ds = CityscapesDataset(synth_root, "val", (32, 64), augment=AUGMENT)
    assert len(ds) == 4
    torch.manual_seed(0)
    instances = 0
    for i in range(len(ds)):
        source, s = ds.source(i), ds[i]
        ids, mask = s["instance_ids"].numpy(), s["instance_mask"].numpy()
        v, u = np.nonzero(mask)
        votes = np.stack([u + s["instance"][0].numpy()[v, u], v + s["instance"][1].numpy()[v, u]])
        for iid in np.unique(ids[mask]):
            spread = votes[:, ids[v, u] == iid].std(axis=1)
            assert spread.max() < 1e-4, f"votes of instance {iid} in sample {i} do not meet"
            instances += 1
        assert not s["instance"].numpy()[:, ~mask].any()
        ratio = float(s["fx"]) / source.fx  # scaled width / original width
        d, valid = s["disparity"].numpy(), s["disparity_mask"].numpy()
        assert (d[~valid] == 0).all() and (d >= 0).all()
        assert d.max() <= (source.disparity_raw.max() - 1) / 256 * ratio + 1e-4
        assert (valid[s["semantic"].numpy() == train_id("sky")]).all()
    assert instances > 0


# --- cache and DataLoader -----------------------------------------------------------------------


def test_cache_matches_png_and_rebuilds_on_change(scene, tmp_path):
    root, p = scene
    cache = tmp_path / "cache"
    direct = numpy_sample(CityscapesDataset(root, "train", (8, 16)))
    cached_ds = CityscapesDataset(root, "train", (8, 16), cache_dir=cache)
    for _ in range(2):  # written, then read back
        cached = numpy_sample(cached_ds)
        for key, value in direct.items():
            np.testing.assert_array_equal(cached[key], value, err_msg=key)
    files = [f for f in cache.rglob("*") if f.is_file()]
    assert [f.name for f in files] == [f"{CITY}_000000_000019.npz"]  # no temporary files left
    # A changed camera file invalidates the entry.
    p["camera"].write_text(json.dumps({"extrinsic": {"baseline": 0.5}, "intrinsic": {"fx": FX}}))
    os.utime(p["camera"], ns=(1, 1))
    assert cached_ds[0]["baseline"] == pytest.approx(0.5)
    # A corrupt entry is rebuilt, not an error.
    files[0].write_bytes(b"garbage")
    assert cached_ds[0]["baseline"] == pytest.approx(0.5)
    # With scale augmentation the cache holds the largest size a draw can ask for.
    aug = CityscapesDataset(root, "train", (8, 16), augment={"scale": [0.5, 1.5]}, cache_dir=cache)
    aug[0]
    assert any("v1_12x24" in str(f) for f in cache.rglob("*.npz"))


def test_dataloader_with_workers(scene):
    root, _ = scene
    write_scene(root, stem=f"{CITY}_000001_000019")
    ds = CityscapesDataset(root, "train", (8, 16), augment=AUGMENT)
    batch = next(iter(DataLoader(ds, batch_size=2, num_workers=2)))
    assert batch["image"].shape == (2, 3, 8, 16) and batch["fx"].shape == (2,)
    assert batch["stem"] == [f"{CITY}_000000_000019", f"{CITY}_000001_000019"]


# --- errors name the file ------------------------------------------------------------------------


def test_missing_root_split_and_size(tmp_path, scene):
    root, _ = scene
    with pytest.raises(DatasetError, match=f"dataset root not found: {re.escape(str(tmp_path / 'nope'))}"):
        CityscapesDataset(tmp_path / "nope", "train", (8, 16))
    with pytest.raises(DatasetError, match=f"split folder not found: {re.escape(str(root / 'leftImg8bit' / 'val'))}"):
        CityscapesDataset(root, "val", (8, 16))
    with pytest.raises(ConfigError, match="size must be"):
        CityscapesDataset(root, "train", (8,))


def test_missing_split_folder_of_one_modality(scene):
    root, _ = scene
    os.rename(root / "disparity" / "train", root / "disparity" / "other")
    with pytest.raises(DatasetError, match=f"split folder not found: {re.escape(str(root / 'disparity' / 'train'))}"):
        CityscapesDataset(root, "train", (8, 16))


@pytest.mark.parametrize("key", ["labels", "ids", "disparity", "camera"])
def test_missing_file_is_named(scene, key):
    root, p = scene
    p[key].unlink()
    with pytest.raises(DatasetError, match=f"missing file: {re.escape(str(p[key]))}$"):
        CityscapesDataset(root, "train", (8, 16))


def test_empty_split(scene):
    root, p = scene
    p["image"].unlink()
    folder = re.escape(str(root / "leftImg8bit" / "train"))
    with pytest.raises(DatasetError, match=f"no \\*_leftImg8bit.png images in {folder}"):
        CityscapesDataset(root, "train", (8, 16))


def _bad_file(key: str, p: dict[str, Path]) -> None:
    """Write one malformed file of the scene."""
    if key == "corrupt":
        p["image"].write_bytes(b"not a png at all")
    elif key == "grey image":
        cv2.imwrite(str(p["image"]), np.zeros((H0, W0), np.uint8))
    elif key == "labels 16-bit":
        cv2.imwrite(str(p["labels"]), np.zeros((H0, W0), np.uint16))
    elif key == "labels unknown id":
        labels = scene_arrays()["labels"]
        labels[0, 0] = 200
        cv2.imwrite(str(p["labels"]), labels)
    elif key == "ids 8-bit":
        cv2.imwrite(str(p["ids"]), np.zeros((H0, W0), np.uint8))
    elif key == "ids bad prefix":
        ids = scene_arrays()["ids"]
        ids[0, 0] = ROAD * 1000 + 1  # road has no instances
        cv2.imwrite(str(p["ids"]), ids)
    elif key == "disparity 8-bit":
        cv2.imwrite(str(p["disparity"]), np.zeros((H0, W0), np.uint8))
    elif key == "disparity size":
        cv2.imwrite(str(p["disparity"]), np.zeros((H0, W0 + 1), np.uint16))
    elif key == "camera no baseline":
        p["camera"].write_text(json.dumps({"extrinsic": {}, "intrinsic": {"fx": FX}}))
    elif key == "camera bad fx":
        p["camera"].write_text(json.dumps({"extrinsic": {"baseline": 0.2}, "intrinsic": {"fx": -1}}))
    elif key == "camera not json":
        p["camera"].write_text("{baseline: ")


@pytest.mark.parametrize(
    "key, file, message",
    [
        ("corrupt", "image", "cannot decode PNG"),
        ("grey image", "image", "expected an 8-bit RGB PNG, got 8-bit, 1 channel"),
        ("labels 16-bit", "labels", "labelIds must be an 8-bit single-channel PNG, got 16-bit"),
        ("labels unknown id", "labels", r"labelIds \[200\] are not Cityscapes label ids"),
        ("ids 8-bit", "ids", "instanceIds must be a 16-bit single-channel PNG, got 8-bit"),
        ("ids bad prefix", "ids", r"instance ids \[7001\] are neither"),
        ("disparity 8-bit", "disparity", "disparity must be a 16-bit single-channel PNG, got 8-bit"),
        ("disparity size", "disparity", "size 33x16 differs from its image"),
        ("camera no baseline", "camera", "missing or non-numeric 'extrinsic.baseline'"),
        ("camera bad fx", "camera", "'intrinsic.fx' must be positive"),
        ("camera not json", "camera", "not a readable JSON file"),
    ],
)
def test_malformed_file_is_named_when_read(scene, key, file, message):
    root, p = scene
    _bad_file(key, p)
    ds = CityscapesDataset(root, "train", (8, 16))  # contents are checked lazily
    path = re.escape(str(p[file]))
    with pytest.raises(DatasetError, match=f"{path}.*{message}|{message}.*{path}"):
        ds[0]
