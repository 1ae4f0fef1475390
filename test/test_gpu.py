"""What only a CUDA GPU can check; skipped where torch sees none (CI has no GPU).

On a GPU machine: ``python -m pytest -q test/test_gpu.py``. The CPU tests already force the
grouping's torch branch and check the pipeline on the CPU; these check the same code on the
device: the vote grouping on CUDA tensors, the torch pipeline (plain, CUDA graphs, fp16)
against the CPU, and a batch finished on another thread and stream after the next forward.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mtl_perception.postprocess.grouping import build_grouper
from test_grouping import noisy_batch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_vote_grouping_on_the_gpu_finds_what_the_cpu_finds():
    vectors, semantic, confidence = noisy_batch(256, 512)
    grouper = build_grouper("votes")
    on_cpu = grouper(vectors, semantic, confidence)
    on_gpu = grouper(vectors.cuda(), semantic.cuda(), confidence.cuda())
    for a, b in zip(on_cpu, on_gpu):
        assert b.labels.is_cuda and len(a) > 3
        assert torch.equal(a.labels, b.labels.cpu()) and torch.equal(a.classes, b.classes.cpu())
        assert torch.equal(a.pixel_counts, b.pixel_counts.cpu())
        torch.testing.assert_close(a.scores, b.scores.cpu(), atol=1e-5, rtol=0)
        torch.testing.assert_close(a.centroids, b.centroids.cpu(), atol=1e-3, rtol=0)


@pytest.fixture(scope="module")
def camera_frame() -> np.ndarray:
    from mtl_perception.data.synth.generate import render_image

    return render_image("val", 0, 256, 512, 0).rgb


def _run(model_path, image: np.ndarray, device: str, precision: str = "fp32", **options):
    from mtl_perception.inference.factory import create_backend
    from mtl_perception.inference.pipeline import Pipeline

    pipeline = Pipeline(create_backend("torch", model_path, device, precision, **options))
    return pipeline(image, outputs=("semantic", "instances", "disparity"))


@pytest.mark.parametrize(
    "precision, options, min_agreement",
    [("fp32", {}, 0.995), ("fp32", {"cuda_graphs": True}, 0.995), ("fp16", {}, 0.98)],
    ids=["fp32", "cuda-graphs", "fp16"],
)
def test_torch_pipeline_on_the_gpu_matches_the_cpu(model_path, camera_frame, precision, options, min_agreement):
    """TF32 convolutions and fp16 round differently from the CPU: near-equal, not equal."""
    cpu = _run(model_path, camera_frame, "cpu")
    gpu = _run(model_path, camera_frame, "cuda", precision, **options)
    assert (cpu.semantic == gpu.semantic).mean() >= min_agreement
    finite = np.isfinite(cpu.disparity) & np.isfinite(gpu.disparity)
    assert np.median(np.abs(cpu.disparity[finite] - gpu.disparity[finite])) < 0.05
    assert abs(len(cpu.instance_list) - len(gpu.instance_list)) <= 2


def test_colour_maps_and_sky_mask_on_the_gpu_give_the_cpu_result():
    """The CPU branches run numpy; the GPU's the torch gathers on device tables."""
    from mtl_perception.postprocess.colormap import colorize_depth, colorize_instances, colorize_semantic
    from mtl_perception.postprocess.depth import sky_mask

    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 256, (64, 96), dtype=torch.uint8, generator=generator)
    instances = torch.randint(-1, 32767, (64, 96), dtype=torch.int16, generator=generator)
    depth = torch.rand(64, 96, generator=generator) * 120.0
    depth[0, :8], depth[1, :8] = float("nan"), float("inf")
    for make, x in ((colorize_semantic, ids), (colorize_instances, instances), (colorize_depth, depth), (sky_mask, ids)):
        on_gpu = make(x.cuda())
        assert on_gpu.is_cuda and torch.equal(make(x), on_gpu.cpu()), make.__name__


@pytest.mark.parametrize("output_resolution", ["network", "input"])
def test_every_output_on_the_gpu_has_the_cpu_shape_and_type(model_path, camera_frame, output_resolution):
    """Every output, at both resolutions, through the device's own kernels (resize, colours, depth)."""
    from mtl_perception.inference.factory import create_backend
    from mtl_perception.inference.pipeline import OUTPUTS, Pipeline

    results = [
        Pipeline(create_backend("torch", model_path, device), output_resolution=output_resolution)(
            camera_frame, outputs=OUTPUTS, network_outputs=("semantic", "instances", "depth")
        )
        for device in ("cpu", "cuda")
    ]
    cpu, gpu = results
    for name in sorted(OUTPUTS):
        a, b = getattr(cpu, name), getattr(gpu, name)
        assert a.shape == b.shape and a.dtype == b.dtype, name
    assert (cpu.semantic == gpu.semantic).mean() >= 0.995
    assert (cpu.network or cpu).image.shape == (gpu.network or gpu).image.shape


@pytest.mark.parametrize("options", [{}, {"cuda_graphs": True}], ids=["eager", "cuda-graphs"])
def test_a_batch_finished_on_another_thread_after_the_next_forward_gives_its_own_results(
    model_path, camera_frame, options
):
    """What the node does on a GPU: round N is finished (finish stream, another thread) while
    round N+1 is already queued on the forward's stream; with CUDA graphs the next replay
    writes into the same output tensors. Round N must come out as when run alone."""
    import threading

    from mtl_perception.inference.factory import create_backend
    from mtl_perception.inference.pipeline import CameraFrame, Pipeline

    pipeline = Pipeline(create_backend("torch", model_path, "cuda", **options))
    outputs = ("semantic", "instances", "depth")
    other = np.ascontiguousarray(255 - camera_frame[::-1])
    alone = pipeline(camera_frame, outputs=outputs)
    first = pipeline.forward_many([CameraFrame(camera_frame)], outputs)
    second = pipeline.forward_many([CameraFrame(other)], outputs)
    results: list = []
    finisher = threading.Thread(target=lambda: results.extend(pipeline.finish(first)))
    finisher.start()
    finisher.join()
    got, = results
    assert (got.semantic == alone.semantic).mean() > 0.999  # an overwritten round differs everywhere
    assert abs(len(got.instance_list) - len(alone.instance_list)) <= 1
    finite = np.isfinite(got.depth) & np.isfinite(alone.depth)
    assert finite.mean() > 0.5 and np.median(np.abs(got.depth[finite] - alone.depth[finite])) < 1e-3
    assert (pipeline.finish(second)[0].semantic == got.semantic).mean() < 0.99  # the rounds really differ
