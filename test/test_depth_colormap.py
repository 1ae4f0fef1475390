"""Disparity -> metric depth (REP 118 conventions) and the colour maps used for RViz."""
from __future__ import annotations

import math

import torch

from mtl_perception.data.labels import PALETTE, SKY_TRAIN_ID
from mtl_perception.postprocess.colormap import colorize_depth, colorize_depth_torch, colorize_instances, colorize_semantic
from mtl_perception.postprocess.depth import disparity_to_depth, disparity_to_depth_torch


def test_depth_is_fx_times_baseline_over_disparity():
    disparity = torch.tensor([[10.0, 2.0], [0.5, 40.0]])
    depth = disparity_to_depth(disparity, fx=500.0, baseline=0.2)
    assert torch.allclose(depth, 100.0 / disparity)


def test_sky_is_inf_and_tiny_or_bad_disparity_is_nan():
    disparity = torch.tensor([[0.0, 0.01, float("nan"), 5.0]])
    sky = torch.tensor([[True, False, False, False]])
    depth = disparity_to_depth(disparity, fx=100.0, baseline=0.5, sky_mask=sky, min_disparity=0.05)
    assert math.isinf(depth[0, 0]) and depth[0, 0] > 0
    assert math.isnan(depth[0, 1]) and math.isnan(depth[0, 2])
    assert depth[0, 3].item() == 10.0


def test_the_cpu_and_the_gpu_branch_agree():
    """numpy on the CPU, torch on a GPU: the same depth, NaN and inf at the same pixels."""
    generator = torch.Generator().manual_seed(0)
    disparity = torch.rand(64, 96, generator=generator) * 60.0
    disparity[0, :8] = 0.0
    disparity[1, :8] = float("inf")
    disparity[2, :8] = float("nan")
    disparity[3, :8] = 0.049
    sky = torch.rand(64, 96, generator=generator) < 0.2
    cpu = disparity_to_depth(disparity, fx=500.0, baseline=0.2, sky_mask=sky, min_disparity=0.05)
    gpu = disparity_to_depth_torch(disparity, 500.0 * 0.2, sky, 0.05)
    assert cpu.dtype == gpu.dtype == torch.float32
    assert cpu[:4, :8][~sky[:4, :8]].isnan().all() and cpu[sky].isposinf().all()
    assert torch.equal(cpu.isnan(), gpu.isnan())
    assert torch.allclose(cpu.nan_to_num(nan=-1.0), gpu.nan_to_num(nan=-1.0), rtol=1e-6, atol=0.0)


def test_semantic_colours_follow_cityscapes_palette_and_blend():
    ids = torch.tensor([[0, SKY_TRAIN_ID], [255, 13]], dtype=torch.uint8)
    color = colorize_semantic(ids)
    assert color.dtype == torch.uint8 and color.shape == (2, 2, 3)
    assert color[0, 1].tolist() == PALETTE[SKY_TRAIN_ID].tolist()
    assert color[1, 0].tolist() == [0, 0, 0]
    white = torch.full((2, 2, 3), 255, dtype=torch.uint8)
    blended = colorize_semantic(ids, white, alpha=0.5)
    assert blended[1, 0].tolist() == [128, 128, 128]


def test_instance_colours_black_background_and_distinct_ids():
    ids = torch.arange(0, 5000, dtype=torch.int32).reshape(50, 100)
    color = colorize_instances(ids)
    assert color[0, 0].tolist() == [0, 0, 0]
    assert (color.reshape(-1, 3)[1:] > 0).any(dim=1).all()
    assert color[0, 1].tolist() != color[0, 2].tolist()


def test_depth_colours_near_differs_from_far_and_unknown_is_black():
    depth = torch.tensor([[1.0, 80.0, float("nan"), float("inf")]])
    color = colorize_depth(depth)
    assert color[0, 0].tolist() != color[0, 1].tolist()
    assert color[0, 2].tolist() == [0, 0, 0] and color[0, 3].tolist() == [0, 0, 0]


def test_depth_colours_of_the_cpu_and_the_gpu_branch_agree():
    """numpy on the CPU, torch on a GPU: the same colour at every pixel, black where unknown."""
    generator = torch.Generator().manual_seed(0)
    depth = torch.rand(64, 96, generator=generator) * 120.0
    depth[0, :8] = float("nan")
    depth[1, :8] = float("inf")
    depth[2, :8] = 0.0
    for range_m in ((3.0, 80.0), (1.0, 20.0)):
        cpu = colorize_depth(depth, *range_m)
        assert cpu.dtype == torch.uint8 and cpu.shape == (64, 96, 3)
        assert torch.equal(cpu, colorize_depth_torch(depth, *range_m))
        assert (cpu[:2, :8] == 0).all() and (cpu[2, :8] != 0).any(dim=-1).all()


def test_instance_colours_read_ids_as_the_published_16_bit_map():
    """int16 labels (the pipeline's, published as mono16) and their uint16 reading colour alike."""
    ids16 = torch.tensor([[0, 1, 4095, 4096, 32767]], dtype=torch.int16)
    wide = torch.tensor([[0, 1, 4095, 4096, 32767]], dtype=torch.int32)
    assert torch.equal(colorize_instances(ids16), colorize_instances(wide))
    # ids cycle through the colour table after 4095 instances, never onto black
    assert colorize_instances(ids16)[0, 3].tolist() == colorize_instances(ids16)[0, 1].tolist()
    assert (colorize_instances(torch.tensor([[-1]], dtype=torch.int16)) > 0).any()
