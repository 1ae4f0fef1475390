"""Instance grouping (votes and OPTICS): exact recovery, noise, edge cases, determinism."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mtl_perception.data.labels import LABEL_ID_TO_TRAIN_ID, train_id
from mtl_perception.data.targets import View, instance_centroids, instance_vectors
from mtl_perception.errors import ConfigError
from mtl_perception.evaluation.instance_ap import InstanceAP
from mtl_perception.postprocess.grouping import Instances, build_grouper, group_instances
from mtl_perception.benchmarks.grouping import noisy_votes, synthetic_layout

H, W = 64, 128
METHODS = ["votes", "optics"]
#: Keeps OPTICS fast on test frames; the shared settings are the defaults.
SETTINGS = {"votes": {}, "optics": {"max_votes": 400}}


def _inputs(gt: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Perfect votes (the training targets) and semantic train ids of a gtFine instanceIds map."""
    vectors, _ = instance_vectors(gt, instance_centroids(gt), View(scaled=gt.shape), gt.shape)
    label = np.where(gt >= 1000, gt // 1000, gt)
    return torch.from_numpy(vectors), torch.from_numpy(LABEL_ID_TO_TRAIN_ID[label].astype(np.int64))


def _scene() -> np.ndarray:
    gt = np.full((H, W), 7, np.int32)  # road
    gt[:12] = 23  # sky
    gt[20:44, 4:40] = 26001  # car
    gt[20:44, 40:60] = 26002  # car touching the first one
    gt[14:50, 70:82] = 24001  # person ...
    gt[14:50, 88:100] = 24001  # ... split by the pole in front of it
    gt[10:60, 82:88] = 17  # pole
    gt[30:50, 104:124] = 33001  # bicycle
    gt[12:36, 108:120] = 25001  # rider on it: centroids close, classes differ
    gt[50:60, 10:16] = 24002  # small person (60 px)
    return gt


def _assert_exact(gt: np.ndarray, inst: Instances) -> None:
    labels = inst.labels.numpy()
    ids = [i for i in np.unique(gt) if i >= 1000]
    assert len(inst) == len(ids)
    for i in ids:
        found = np.unique(labels[gt == i])
        assert len(found) == 1 and found[0] > 0, f"gt {i} -> labels {found}"
        assert np.array_equal(labels == found[0], gt == i), f"gt {i} not recovered exactly"
        k = found[0] - 1
        assert inst.classes[k] == LABEL_ID_TO_TRAIN_ID[i // 1000]
        assert inst.pixel_counts[k] == (gt == i).sum()
        ys, xs = np.nonzero(gt == i)
        np.testing.assert_allclose(inst.centroids[k].numpy(), [xs.mean(), ys.mean()], atol=1e-3)
    assert (labels[gt < 1000] == 0).all()


def _ap(gt: np.ndarray, inst: Instances, min_region_size: float = 10) -> float:
    ap = InstanceAP(min_region_size=min_region_size)
    ap.add(inst.labels.numpy(), inst.classes.numpy(), inst.scores.numpy(), gt)
    return ap.result()["AP"]


@pytest.mark.parametrize("method", METHODS)
def test_perfect_votes_recover_every_instance(method):
    gt = _scene()
    vectors, semantic = _inputs(gt)
    inst = group_instances(vectors, semantic, method=method, **SETTINGS[method])
    _assert_exact(gt, inst)
    assert _ap(gt, inst) == pytest.approx(1.0)
    assert inst.labels.dtype == torch.int32 and inst.labels.shape == (H, W)
    assert torch.all((inst.scores > 0.99) & (inst.scores <= 1.0))  # every vote on its peak


@pytest.mark.parametrize("method", METHODS)
def test_noisy_votes(method):
    rng = np.random.default_rng(1)
    gt = synthetic_layout(96, 192, rng, objects=12)
    vectors, semantic = noisy_votes(gt, 0.05, rng)
    inst = group_instances(torch.from_numpy(vectors), torch.from_numpy(semantic), method=method, **SETTINGS[method])
    assert _ap(gt, inst, min_region_size=100 * 96 * 192 / (1024 * 2048)) > 0.85
    perfect = group_instances(*_inputs(gt), method=method, **SETTINGS[method])
    assert len(inst) <= len(perfect) + 3  # noise does not shatter objects


@pytest.mark.parametrize("method", METHODS)
def test_frame_without_things(method):
    gt = np.full((H, W), 7, np.int32)
    gt[:20] = 23
    inst = group_instances(*_inputs(gt), method=method, **SETTINGS[method])
    assert len(inst) == 0 and not inst.labels.any()
    assert inst.centroids.shape == (0, 2) and inst.scores.shape == (0,)


@pytest.mark.parametrize("method", METHODS)
def test_frame_of_one_class(method):
    whole_car = np.full((32, 48), 26001, np.int32)
    inst = group_instances(*_inputs(whole_car), method=method, **SETTINGS[method])
    _assert_exact(whole_car, inst)
    road = np.full((32, 48), 7, np.int32)
    assert len(group_instances(*_inputs(road), method=method, **SETTINGS[method])) == 0


@pytest.mark.parametrize("method", METHODS)
def test_many_small_instances(method):
    gt = np.full((H, W), 7, np.int32)
    k = 0
    for y in range(2, H - 6, 10):
        for x in range(2, W - 6, 10):
            k += 1
            gt[y : y + 6, x : x + 6] = (24 if k % 2 else 26) * 1000 + k
    settings = {**SETTINGS[method], "min_pixels": 8, "bin_size": 2}
    if method == "votes":
        settings.update(nms_kernel=3, peak_threshold=4)
    inst = group_instances(*_inputs(gt), method=method, **settings)
    assert k == 72
    _assert_exact(gt, inst)


@pytest.mark.parametrize("method", METHODS)
def test_deterministic_and_batch_independent(method):
    rng = np.random.default_rng(2)
    frames = [synthetic_layout(48, 96, rng, objects=8) for _ in range(2)]
    pairs = [noisy_votes(gt, 0.08, rng) for gt in frames]
    vectors = torch.from_numpy(np.stack([p[0] for p in pairs]))
    semantic = torch.from_numpy(np.stack([p[1] for p in pairs]))
    confidence = torch.rand(semantic.shape, generator=torch.Generator().manual_seed(0))
    grouper = build_grouper(method, **SETTINGS[method])
    batch = grouper(vectors, semantic, confidence)
    again = grouper(vectors, semantic, confidence)
    for i, inst in enumerate(batch):
        single = grouper(vectors[i : i + 1], semantic[i : i + 1], confidence[i : i + 1])[0]
        for other in (again[i], single):
            assert torch.equal(inst.labels, other.labels) and torch.equal(inst.classes, other.classes)
            assert torch.allclose(inst.scores, other.scores) and torch.equal(inst.pixel_counts, other.pixel_counts)
            assert torch.allclose(inst.centroids, other.centroids)
        assert len(inst) > 3


def noisy_batch(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two frames of 12 objects with noisy votes: vectors, uint8 semantic ids, random confidence."""
    rng = np.random.default_rng(5)
    pairs = [noisy_votes(synthetic_layout(height, width, rng, objects=12), 0.05, rng) for _ in range(2)]
    vectors = torch.from_numpy(np.stack([p[0] for p in pairs]))
    semantic = torch.from_numpy(np.stack([p[1] for p in pairs]).astype(np.uint8))
    return vectors, semantic, torch.rand(semantic.shape, generator=torch.Generator().manual_seed(1))


def test_torch_branch_matches_numpy_branch(monkeypatch):
    """The grouping a GPU runs (torch compare + nonzero) finds what the CPU's numpy branch finds."""
    import mtl_perception.postprocess.grouping as grouping
    import mtl_perception.postprocess.vote_grouping as vote_grouping

    vectors, semantic, confidence = noisy_batch(64, 128)
    grouper = build_grouper("votes")
    numpy_branch = grouper(vectors, semantic, confidence)
    calls = []

    def torch_only(*args):
        calls.append(args[0].shape)
        return grouping.torch_flat_where(*args)

    for module in (grouping, vote_grouping):
        monkeypatch.setattr(module, "flat_where", torch_only)
    torch_branch = grouper(vectors, semantic, confidence)
    assert len(calls) >= 5  # thing pixels, (image, class) groups, peak candidates, occupied bins, kept instances
    for a, b in zip(numpy_branch, torch_branch):
        assert len(a) > 3 and torch.equal(a.labels, b.labels) and torch.equal(a.classes, b.classes)
        assert torch.equal(a.pixel_counts, b.pixel_counts) and torch.allclose(a.scores, b.scores)
        assert torch.allclose(a.centroids, b.centroids)


def test_score_is_confidence_times_focus():
    gt = _scene()
    vectors, semantic = _inputs(gt)
    confidence = torch.full(semantic.shape, 0.5)
    inst = group_instances(vectors, semantic, confidence=confidence)
    assert torch.allclose(inst.scores, torch.full_like(inst.scores, 0.5))
    vectors = vectors.clone()
    car = torch.from_numpy(gt == 26001)
    vectors[:, car] += torch.randn(2, int(car.sum()), generator=torch.Generator().manual_seed(0)) * 15.0
    scattered = group_instances(vectors, semantic, confidence=confidence)
    car_label = int(torch.mode(scattered.labels[car]).values)
    assert scattered.scores[car_label - 1] < 0.35  # stray votes: low focus, low score


def test_non_finite_votes_are_left_unassigned():
    gt = _scene()
    vectors, semantic = _inputs(gt)
    vectors[0, 25, 10] = float("nan")
    vectors[1, 26, 10] = float("inf")
    inst = group_instances(vectors, semantic)
    assert inst.labels[25, 10] == 0 and inst.labels[26, 10] == 0
    assert len(inst) == 6


def test_far_votes_stay_unassigned():
    gt = _scene()
    vectors, semantic = _inputs(gt)
    inst = group_instances(vectors, semantic, radius=4.0)
    _assert_exact(gt, inst)  # perfect votes are on their peak
    shifted = vectors.clone()
    car = torch.from_numpy(gt == 26001)
    shifted[0, car] += 40.0  # every vote of this car lands 40 px away, in an empty region
    moved = group_instances(shifted, semantic, radius=4.0)
    assert int(moved.labels[car].ne(0).sum()) == int(car.sum())  # they form their own peak
    far = group_instances(shifted, semantic, radius=4.0, min_pixels=1000)
    assert not far.labels.any()


def test_count_thresholds_follow_the_area_of_the_resolution():
    """A distant person of 2 x 3 pixels at 128 rows (what 4 x 6 is at 256) is found by default;
    at 256 rows the same 6 pixels are below its 8-pixel minimum."""
    for height, found in ((128, True), (256, False)):
        gt = np.full((height, 2 * height), 7, np.int32)
        gt[40:43, 40:42] = 24001  # 6 pixels of person
        gt[60:90, 100:140] = 26001  # and a car
        vectors, semantic = _inputs(gt)
        inst = group_instances(vectors, semantic)
        assert bool(inst.labels[41, 41]) is found and bool(inst.labels[70, 120]), height


def test_settings_are_checked():
    with pytest.raises(ConfigError, match="unknown grouping method 'kmeans'"):
        build_grouper("kmeans")
    with pytest.raises(ConfigError, match="unknown setting"):
        build_grouper("votes", eps=3)
    with pytest.raises(ConfigError, match="nms_kernel must be an odd integer"):
        build_grouper("votes", nms_kernel=4)
    with pytest.raises(ConfigError, match="cluster_method"):
        build_grouper("optics", cluster_method="kmeans")
    with pytest.raises(ConfigError, match="radius must be a number"):
        build_grouper("votes", radius="far")
    with pytest.raises(ValueError, match=r"semantic must be \(1, 4, 4\)"):
        build_grouper("votes")(torch.zeros(1, 2, 4, 4), torch.zeros(1, 4, 5, dtype=torch.long))


def test_classes_never_merge():
    """A rider exactly on its bicycle's centroid: two instances, one per class."""
    gt = np.full((32, 48), 7, np.int32)
    gt[8:24, 8:40] = 33001
    gt[12:20, 20:28] = 25001  # same centroid column and row range centre
    inst = group_instances(*_inputs(gt))
    _assert_exact(gt, inst)
    assert sorted(inst.classes.tolist()) == [train_id("rider"), train_id("bicycle")]


def test_bench_groups_noisy_votes_and_model_outputs(model_path, tmp_path):
    """``bench grouping`` at its smallest: both sources at every resolution, votes only."""
    from mtl_perception.cli import main
    from mtl_perception.benchmarks.grouping import RESOLUTIONS

    out = tmp_path / "grouping.json"
    args = ["--methods", "votes", "--frames", "1", "--repeats", "1", "--model-frames", "1", "--model", str(model_path)]
    # --default-allocator: keep this test process's malloc as it is (the setting is process-wide).
    assert main(["bench", "grouping", *args, "--default-allocator", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    rows = {(r["source"], r["resolution"]): r for r in report["results"]}
    assert set(rows) == {(s, f"{h}x{w}") for s in ("noisy_gt", "model") for h, w in RESOLUTIONS}
    assert all(r["method"] == "votes" and r["ms_min"] > 0 and r["page_faults_per_frame"] >= 0 for r in rows.values())
    assert report["machine"]["freed_memory_retained"] is False
    assert min(r["AP"] for (s, _), r in rows.items() if s == "noisy_gt") > 0.9
    assert report["model"] == str(model_path) and report["threads"] == 1
    assert report["device"] == "cpu" and all(r["device"] == "cpu" for r in rows.values())  # auto, without a GPU


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without a GPU")
def test_bench_grouping_on_a_missing_gpu_is_one_clear_error(capsys):
    from mtl_perception.cli import main

    assert main(["bench", "grouping", "--device", "cuda", "--methods", "votes", "--model-frames", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "sees no CUDA GPU" in err[0]
