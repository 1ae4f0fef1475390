"""The Pipeline: shapes and types, resizing rules, metric depth, lazy outputs, inputs, batches."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from inference_helpers import BASELINE, FX, HEIGHT, WIDTH, shared_checkpoint, shared_onnx, tiny_checkpoint
from mtl_perception.data.labels import SKY_TRAIN_ID
from mtl_perception.errors import UserError
from mtl_perception.inference.camera import CameraModel
from mtl_perception.inference.factory import create_backend
from mtl_perception.inference.pipeline import OUTPUTS, CameraFrame, Pipeline, _channel_argmax, pack, unpack
from mtl_perception.postprocess.resize import nearest as _nearest_resize
from mtl_perception.postprocess.depth import disparity_to_depth

IN_H, IN_W = 96, 256  # camera image: larger than the network (64 x 128), another aspect ratio


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    return Pipeline(create_backend("torch", shared_checkpoint(tmp_path_factory), "cpu"))


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(0).integers(0, 256, (IN_H, IN_W, 3), dtype=np.uint8)


def _network_outputs(pipeline, image):
    """What the backend returns for ``image`` (the pipeline's own preprocessing)."""
    return pipeline.backend.forward(pipeline.preprocess(image))


def test_default_outputs_at_input_resolution(pipeline, image):
    r = pipeline(image)
    assert r.semantic.shape == (IN_H, IN_W) and r.semantic.dtype == np.uint8
    assert r.instances.shape == (IN_H, IN_W) and r.instances.dtype == np.uint16
    assert r.depth.shape == (IN_H, IN_W) and r.depth.dtype == np.float32
    assert r.disparity is None and r.semantic_color is None and r.instance_color is None and r.depth_color is None
    assert set(r.timings) == {"preprocess", "forward", "postprocess", "copy", "total"}
    assert all(v >= 0 for v in r.timings.values()) and r.timings["total"] >= r.timings["forward"]
    ids = np.unique(r.instances)
    assert list(ids[ids > 0]) == [i.id for i in r.instance_list]
    for inst in r.instance_list:
        mask = r.instances == inst.id
        assert inst.pixels == int(mask.sum()) and inst.train_id == int(np.bincount(r.semantic[mask]).argmax())
        assert 0 <= inst.centroid[0] < IN_W and 0 <= inst.centroid[1] < IN_H and 0 <= inst.score <= 1


def _ties(size_in: int, size_out: int) -> np.ndarray:
    """Output pixels whose centre maps exactly onto a source pixel border (nearest is a tie)."""
    src = (np.arange(size_out) + 0.5) * size_in / size_out
    return np.isclose(src, np.round(src))


def test_ids_are_nearest_resized_network_argmax(pipeline, image):
    raw = _network_outputs(pipeline, image)
    ids = raw["semantic"][0].argmax(0).to(torch.uint8)
    expected = F.interpolate(ids[None, None], size=(IN_H, IN_W), mode="nearest-exact")[0, 0].numpy()
    got = pipeline(image, outputs={"semantic"}).semantic
    # OpenCV's kernel may round a tie to the other neighbour; everywhere else it is torch's.
    untied = ~(_ties(HEIGHT, IN_H)[:, None] | _ties(WIDTH, IN_W)[None, :])
    assert untied.mean() > 0.6
    np.testing.assert_array_equal(got[untied], expected[untied])


def test_channel_argmax_is_argmax_with_the_first_class_on_ties():
    """The CPU reduction over NCHW channels: argmax's ids and the maximum, ties included."""
    logits = np.random.default_rng(3).integers(-2, 3, size=(19, 40, 60)).astype(np.float32)  # many ties
    best, ids = _channel_argmax(logits)
    assert ids.dtype == np.uint8
    np.testing.assert_array_equal(ids, logits.argmax(0))  # numpy's argmax: first occurrence
    np.testing.assert_array_equal(best, logits.max(0))


def test_channels_first_and_channels_last_logits_give_the_same_ids_and_scores(pipeline, image, tmp_path_factory):
    """The two reduction paths of the semantic post-processing (layout of the backend's logits)."""
    nchw = Pipeline(create_backend("torch", shared_checkpoint(tmp_path_factory), "cpu", channels_last=False))
    a = pipeline(image, outputs={"semantic", "instances"})
    b = nchw(image, outputs={"semantic", "instances"})
    assert (a.semantic == b.semantic).mean() > 0.999  # equal up to near-ties of the two convolution orders
    assert len(a.instance_list) == len(b.instance_list) > 0
    for x, y in zip(a.instance_list, b.instance_list):
        assert x.train_id == y.train_id and x.score == pytest.approx(y.score, abs=1e-3)


def test_disparity_is_resized_bilinearly_and_rescaled_to_the_output_width(pipeline, image):
    raw = _network_outputs(pipeline, image)["depth"].clamp(min=0)
    expected = F.interpolate(raw, size=(IN_H, IN_W), mode="bilinear", align_corners=False)[0, 0] * (IN_W / WIDTH)
    got = pipeline(image, outputs={"disparity"}).disparity
    assert float(np.median(got)) > 2.0  # meaningful disparities, and twice the network's values
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-5, atol=1e-5)


def test_depth_without_camera_uses_the_training_camera(pipeline, image):
    r = pipeline(image, outputs={"disparity", "depth", "semantic"})
    fx_out = FX * IN_W / WIDTH
    assert (r.camera.fx, r.camera.baseline, r.camera.width, r.camera.height) == (fx_out, BASELINE, IN_W, IN_H)
    expected = disparity_to_depth(
        torch.from_numpy(r.disparity), fx_out, BASELINE, torch.from_numpy(r.semantic == SKY_TRAIN_ID)
    ).numpy()
    np.testing.assert_allclose(r.depth, expected, rtol=1e-6, equal_nan=True)
    # Resolution-independent: the same scene at network resolution gives the same metres.
    net = Pipeline(pipeline.backend, output_resolution="network")(image, outputs={"depth", "disparity"})
    assert net.depth.shape == (HEIGHT, WIDTH) and net.camera.fx == pytest.approx(FX)
    assert np.nanmedian(net.depth) == pytest.approx(np.nanmedian(r.depth), rel=0.1)


def test_depth_with_a_camera_uses_its_focal_length_at_the_output_resolution(pipeline, image):
    # Calibrated at twice the image size (e.g. a binned stream): fx is halved for the output.
    camera = CameraModel(
        fx=500.0, fy=500.0, cx=IN_W - 0.5, cy=IN_H - 0.5, width=2 * IN_W, height=2 * IN_H, baseline=0.5
    )
    r = pipeline(image, camera=camera, outputs={"disparity", "depth"})
    assert r.camera.fx == pytest.approx(250.0) and r.camera.cx == pytest.approx((IN_W - 1) / 2)
    valid = np.isfinite(r.depth)
    assert valid.mean() > 0.5
    np.testing.assert_allclose(r.depth[valid], 250.0 * 0.5 / r.disparity[valid], rtol=1e-5)
    mono = CameraModel(fx=500.0, fy=500.0, cx=255.5, cy=95.5, width=2 * IN_W, height=2 * IN_H)
    assert pipeline(image, camera=mono, outputs={"depth"}).camera.baseline == BASELINE


def test_sky_is_infinitely_far(pipeline, image, monkeypatch):
    forward = pipeline.backend.forward

    def sky_everywhere(x):
        out = dict(forward(x))
        out["semantic"] = torch.zeros_like(out["semantic"])
        out["semantic"][:, SKY_TRAIN_ID] = 1.0
        return out

    monkeypatch.setattr(pipeline.backend, "forward", sky_everywhere)
    r = pipeline(image, outputs={"depth"})
    assert np.isposinf(r.depth).all()


def test_outputs_not_requested_are_not_computed(pipeline, image, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("grouping ran although no instance output was requested")

    monkeypatch.setattr(pipeline, "grouper", fail)
    r = pipeline(image, outputs={"semantic", "depth"})
    assert r.instances is None and r.instance_list == []
    with pytest.raises(AssertionError, match="grouping ran"):
        pipeline(image, outputs={"instance_color"})


def test_colour_images_only_when_asked(pipeline, image):
    r = pipeline(image, outputs={"semantic_color", "instance_color", "depth_color"})
    for c in (r.semantic_color, r.instance_color, r.depth_color):
        assert c.shape == (IN_H, IN_W, 3) and c.dtype == np.uint8
    assert r.semantic is None and r.depth is None and r.instances is None


def test_bgr_torch_and_numpy_inputs_agree(pipeline, image):
    rgb = pipeline(image, outputs={"semantic", "disparity"})
    bgr = pipeline(np.ascontiguousarray(image[..., ::-1]), encoding="bgr", outputs={"semantic", "disparity"})
    tensor = pipeline(torch.from_numpy(image), outputs={"semantic", "disparity"})
    for other in (bgr, tensor):
        np.testing.assert_array_equal(rgb.semantic, other.semantic)
        np.testing.assert_array_equal(rgb.disparity, other.disparity)


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((IN_H, IN_W), np.uint8), "H x W x 3"),
        (np.zeros((IN_H, IN_W, 3), np.float32), "uint8"),
        (np.zeros((0, IN_W, 3), np.uint8), "non-empty"),
    ],
)
def test_bad_images_are_user_errors(pipeline, bad, message):
    with pytest.raises(UserError, match=message):
        pipeline(bad)


def test_bad_requests_are_user_errors(pipeline, image, tmp_path):
    with pytest.raises(UserError, match="unknown output"):
        pipeline(image, outputs={"panoptic"})
    with pytest.raises(UserError, match="encoding"):
        pipeline(image, encoding="mono8")
    semantic_only = Pipeline(create_backend("torch", tiny_checkpoint(tmp_path / "s.pt", tasks=["semantic"]), "cpu"))
    with pytest.raises(UserError, match="cannot produce"):
        semantic_only(image, outputs={"instances"})
    assert semantic_only.available == {"semantic", "semantic_color"}


def test_run_batch_returns_network_outputs_for_uint8_and_normalised_batches(pipeline):
    images = np.random.default_rng(1).integers(0, 256, (2, HEIGHT, WIDTH, 3), dtype=np.uint8)
    out = pipeline.run_batch(images)
    assert out["semantic"].shape == (2, 19, HEIGHT, WIDTH) and out["semantic_ids"].shape == (2, HEIGHT, WIDTH)
    assert out["instance"].shape == (2, 2, HEIGHT, WIDTH) and out["depth"].shape == (2, 1, HEIGHT, WIDTH)
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    normalised = ((torch.from_numpy(images).float() / 255 - mean) / std).permute(0, 3, 1, 2)
    again = pipeline.run_batch(normalised, normalized=True)
    torch.testing.assert_close(again["depth"], out["depth"], rtol=1e-4, atol=1e-4)
    single = pipeline(images[1], outputs={"semantic"}).semantic
    np.testing.assert_array_equal(out["semantic_ids"][1].numpy(), single)


def test_raw_input_argmax_onnx_model_gives_the_torch_result(pipeline, image, tmp_path_factory):
    onnx_path = shared_onnx(tmp_path_factory, dynamic=False, raw_input=True, argmax=True)
    folded = Pipeline(create_backend("onnxruntime", onnx_path, "cpu"))
    assert folded.backend.metadata.raw_input and folded.backend.input_dtype == torch.uint8
    a = pipeline(image, outputs={"semantic", "disparity", "instances"})
    b = folded(image, outputs={"semantic", "disparity", "instances"})
    # uint8 resizing (folded) vs float resizing: equal up to rounding of the resized image.
    assert (a.semantic == b.semantic).mean() > 0.97
    assert np.abs(a.disparity - b.disparity).mean() < 0.05
    # Grouping without logits: scores are the vote focus alone.
    assert all(0 <= i.score <= 1 for i in b.instance_list)


def test_fixed_size_models_refuse_another_network_size(tmp_path_factory):
    onnx_path = shared_onnx(tmp_path_factory, dynamic=False, raw_input=True, argmax=True)
    backend = create_backend("onnxruntime", onnx_path, "cpu")
    with pytest.raises(UserError, match="fixed at 64x128"):
        Pipeline(backend, network_size=(128, 256))


def test_nearest_resize_uses_pixel_centres():
    ids = torch.tensor([[1, 2], [3, 4]], dtype=torch.int16)
    up = _nearest_resize(ids, 4, 4)
    assert up.dtype == torch.int16
    assert up.tolist() == [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]
    assert _nearest_resize(up, 2, 2).tolist() == ids.tolist()


def test_outputs_pack_into_one_aligned_buffer_and_unpack_to_views():
    """The layout of the GPU path's single device-to-host copy (exercised here on the CPU)."""
    tensors = {
        "semantic": torch.randint(0, 19, (3, 5), dtype=torch.uint8),
        "instances": torch.randint(0, 9, (3, 5), dtype=torch.int16),
        "depth": torch.rand(3, 5),
        "table": torch.rand(2, 5, dtype=torch.float64),
    }
    buffer, layout = pack(tensors)
    assert buffer.dtype == torch.uint8 and buffer.dim() == 1 and all(offset % 16 == 0 for _, offset, *_ in layout)
    arrays = unpack(buffer.clone(), layout)
    for name, t in tensors.items():
        assert arrays[name].dtype == t.numpy().dtype
        np.testing.assert_array_equal(arrays[name], t.numpy())


def test_camera_scaling_keeps_the_optical_centre():
    cam = CameraModel(fx=1000.0, fy=1000.0, cx=1023.5, cy=511.5, width=2048, height=1024, baseline=0.2)
    small = cam.scaled(512, 256)
    assert (small.fx, small.fy, small.cx, small.cy) == (250.0, 250.0, 255.5, 127.5)
    assert small.scaled(2048, 1024) == cam
    with pytest.raises(UserError):
        CameraModel(fx=-1.0, fy=1.0, cx=0.0, cy=0.0, width=10, height=10)
    assert math.isclose(CameraModel.centred(100.0, 64, 32).cx, 31.5)


def test_every_output_name_is_documented():
    assert OUTPUTS == {"semantic", "instances", "disparity", "depth", "semantic_color", "instance_color", "depth_color"}


def test_colour_images_at_the_camera_size_are_the_colours_of_the_resized_ids(pipeline, image):
    from mtl_perception.postprocess.colormap import colorize_instances, colorize_semantic

    r = pipeline(image, outputs={"semantic", "instances", "semantic_color", "instance_color"})
    ids, labels = torch.from_numpy(r.semantic), torch.from_numpy(r.instances.astype(np.int16))
    np.testing.assert_array_equal(r.instance_color, colorize_instances(labels).numpy())
    blended = colorize_semantic(ids, torch.from_numpy(image), pipeline.color_alpha).numpy()
    assert np.abs(r.semantic_color.astype(int) - blended).max() <= 1  # rounding of the blend
    bgr = pipeline(np.ascontiguousarray(image[..., ::-1]), encoding="bgr", outputs={"semantic_color"})
    np.testing.assert_array_equal(bgr.semantic_color, r.semantic_color)


def test_network_outputs_come_at_the_network_size_next_to_camera_sized_ones(pipeline, image):
    wanted = {"semantic", "instances", "depth"}
    r = pipeline(image, outputs=wanted, network_outputs=wanted)
    net = Pipeline(pipeline.backend, output_resolution="network")(image, outputs=wanted)
    assert r.semantic.shape == (IN_H, IN_W) and r.network.semantic.shape == (HEIGHT, WIDTH)
    np.testing.assert_array_equal(r.network.semantic, net.semantic)
    np.testing.assert_array_equal(r.network.instances, net.instances)
    np.testing.assert_allclose(r.network.depth, net.depth, rtol=1e-6, equal_nan=True)
    assert r.network.camera == net.camera == r.camera.scaled(WIDTH, HEIGHT)
    assert [i.train_id for i in r.network.instance_list] == [i.train_id for i in r.instance_list]
    # At the network's own resolution there is nothing else to return.
    assert net.network is None and Pipeline(pipeline.backend, output_resolution="network")(
        image, outputs={"semantic"}, network_outputs={"depth"}
    ).depth.shape == (HEIGHT, WIDTH)


def test_network_outputs_come_with_the_image_the_network_saw(pipeline, image):
    """Points are coloured with it: RGB at the network's size, whatever the camera's order."""
    rgb = pipeline(image, outputs={"semantic"}, network_outputs={"depth"})
    bgr = pipeline(np.ascontiguousarray(image[..., ::-1]), encoding="bgr", outputs={"semantic"}, network_outputs={"depth"})
    assert rgb.image is None and rgb.network.image.shape == (HEIGHT, WIDTH, 3) and rgb.network.image.dtype == np.uint8
    np.testing.assert_array_equal(rgb.network.image, bgr.network.image)
    expected = F.interpolate(
        torch.from_numpy(image).permute(2, 0, 1)[None], size=(HEIGHT, WIDTH), mode="bilinear", align_corners=False
    )[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(rgb.network.image.astype(int), expected.astype(int), atol=1)
    assert pipeline(image, outputs={"semantic"}).network is None  # nothing asked at the network's size


def test_every_result_carries_its_camera_at_the_output_resolution(pipeline, image):
    r = pipeline(image, outputs={"semantic"})
    assert (r.camera.width, r.camera.height) == (IN_W, IN_H) and r.camera.fx == pytest.approx(FX * IN_W / WIDTH)


def test_several_cameras_share_one_forward_and_each_gets_its_own_result(pipeline, image, monkeypatch):
    """process_many: cameras of different sizes and channel orders in one batch; each result
    is what a call with that camera alone gives, at its own output resolution."""
    from mtl_perception.inference.pipeline import CameraFrame

    wide = np.ascontiguousarray(np.concatenate([image, image[:, ::-1]], axis=1))  # another aspect ratio
    small = np.ascontiguousarray(image[::2, ::2])
    camera = CameraModel(fx=90.0, fy=90.0, cx=small.shape[1] / 2, cy=small.shape[0] / 2,
                         width=small.shape[1], height=small.shape[0], baseline=0.3)
    frames = [CameraFrame(image), CameraFrame(np.ascontiguousarray(wide[..., ::-1]), "bgr"), CameraFrame(small, camera=camera)]
    outputs = {"semantic", "instances", "depth", "semantic_color"}
    batches = []
    forward = pipeline.backend.forward
    monkeypatch.setattr(pipeline.backend, "forward", lambda x: batches.append(x.shape[0]) or forward(x))
    for resolution in ("input", "network"):
        monkeypatch.setattr(pipeline, "output_resolution", resolution)
        together = pipeline.process_many(frames, outputs)
        assert batches.pop() == 3  # one forward pass for the three cameras
        for frame, got in zip(frames, together):
            alone = pipeline(frame.image, frame.encoding, frame.camera, outputs)
            batches.pop()
            assert got.semantic.shape == alone.semantic.shape
            assert (got.semantic == alone.semantic).mean() > 0.999  # batched convolutions may round differently
            np.testing.assert_allclose(got.depth, alone.depth, rtol=1e-4)
            assert got.camera == alone.camera
    assert together[2].camera.fx == pytest.approx(90.0 * pipeline.network_size[1] / small.shape[1])


def test_a_fixed_batch_model_takes_the_cameras_one_at_a_time(image, tmp_path_factory):
    from mtl_perception.inference.pipeline import CameraFrame

    fixed = Pipeline(create_backend("onnxruntime", shared_onnx(tmp_path_factory, dynamic=False), "cpu"))
    assert fixed.max_batch == 1
    results = fixed.process_many([CameraFrame(image), CameraFrame(image[::2, ::2].copy())], {"semantic"})
    assert [r.semantic.shape for r in results] == [image.shape[:2], (image.shape[0] // 2, image.shape[1] // 2)]


def test_the_pipeline_batches_what_its_backend_takes(image, tmp_path_factory):
    """A backend that takes two images per forward (a TensorRT profile 1..2) gets three
    cameras as a batch of two and one of one."""
    from mtl_perception.inference.onnxruntime_backend import OnnxRuntimeBackend
    from mtl_perception.inference.pipeline import CameraFrame

    class TakesTwo(OnnxRuntimeBackend):
        sizes: list[int] = []
        max_batch = 2

        def forward(self, x):
            self.sizes.append(int(x.shape[0]))
            return super().forward(x)

    pipeline = Pipeline(TakesTwo(shared_onnx(tmp_path_factory, dynamic=True), torch.device("cpu")))
    results = pipeline.process_many([CameraFrame(image)] * 3, {"semantic"})
    assert TakesTwo.sizes == [2, 1] and len(results) == 3


def test_a_forwarded_batch_survives_later_forwards_of_a_backend_that_reuses_its_buffers(image, tmp_path_factory):
    """The node finishes round N on its publishing thread while round N+1 runs through the
    network: with a backend that writes every forward into the same tensors (CUDA graph
    replay), round N must still give its own results, not round N+1's."""
    from mtl_perception.inference.onnxruntime_backend import OnnxRuntimeBackend

    class ReusesBuffers(OnnxRuntimeBackend):
        """Every forward's outputs copied into one set of tensors, as a replayed graph does."""

        buffers: dict[str, torch.Tensor] = {}

        @property
        def reuses_outputs(self) -> bool:
            return True

        def forward(self, x):
            for name, value in super().forward(x).items():
                self.buffers.setdefault(name, torch.empty_like(value)).copy_(value)
            return self.buffers

    pipeline = Pipeline(ReusesBuffers(shared_onnx(tmp_path_factory, dynamic=True), torch.device("cpu")))
    other = np.ascontiguousarray(255 - image[::-1])
    outputs = {"semantic", "instances", "depth"}
    expected = pipeline(image, outputs=outputs)
    first = pipeline.forward_many([CameraFrame(image)], outputs)
    second = pipeline.forward_many([CameraFrame(other)], outputs)
    got, = pipeline.finish(first)
    np.testing.assert_array_equal(got.semantic, expected.semantic)
    np.testing.assert_array_equal(got.instances, expected.instances)
    np.testing.assert_array_equal(got.depth, expected.depth)
    assert not np.array_equal(pipeline.finish(second)[0].depth, got.depth)  # the rounds really differ
    assert set(got.timings) == {"preprocess", "forward", "postprocess", "copy", "total"}
