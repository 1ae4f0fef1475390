"""``mtl-perception bench train``: training throughput (images/s) and, on GPUs, model FLOPs utilisation.

Measures the trainer's own step (``TrainStep``: forward, the three losses, uncertainty
weighting, backward, optimiser step) on random tensors, so the number is the model's cost
alone; data loading is measured by ``bench data``. On CPU: ResNet-18, OS 16, 128x256. On a
GPU also ResNet-50/101 (OS 8) at 128x256 and 256x512 with bf16 autocast and channels_last,
as the trainer runs there.

MFU = (FLOPs of one training step, counted by ``torch.utils.flop_counter.FlopCounterMode``
over forward and backward) x steps/s / the GPU's dense bf16 peak. The peak comes from a
small table of data-sheet values (or ``--peak-tflops``); unknown GPUs report no MFU.
"""
from __future__ import annotations

import argparse
import contextlib
import time
from typing import Any

from mtl_perception.benchmarks.base import Benchmark

# Dense bf16 tensor-core peaks from NVIDIA data sheets, matched against the device name.
_PEAK_BF16_TFLOPS = (("H200", 989.4), ("H100 PCIe", 756.0), ("H100", 989.4), ("A100", 312.0), ("L40S", 362.0))


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch-size", type=int, default=4, help="images per step (default: 4)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per setting (default: 5)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (default: 2)")
    parser.add_argument("--gpu-batch-size", type=int, default=8, help="images per step on GPU (default: 8)")
    parser.add_argument("--peak-tflops", type=float, help="GPU dense bf16 peak, for MFU on GPUs not in the table")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")


def _random_batch(batch: int, height: int, width: int, device: Any) -> dict[str, Any]:
    import torch

    g = torch.Generator().manual_seed(0)
    semantic = torch.randint(0, 19, (batch, height, width), generator=g)
    semantic[:, : height // 8] = 255
    instance_mask = torch.rand(batch, height, width, generator=g) < 0.3
    disparity_mask = torch.rand(batch, height, width, generator=g) < 0.9
    out = {
        "image": torch.randn(batch, 3, height, width, generator=g),
        "semantic": semantic,
        "instance": torch.randn(batch, 2, height, width, generator=g) * 10 * instance_mask.unsqueeze(1),
        "instance_mask": instance_mask,
        "disparity": torch.rand(batch, height, width, generator=g) * 30 * disparity_mask,
        "disparity_mask": disparity_mask,
    }
    return {k: v.to(device) for k, v in out.items()}


def _peak_flops(device_name: str, override_tflops: float | None) -> float | None:
    if override_tflops:
        return override_tflops * 1e12
    for key, tflops in _PEAK_BF16_TFLOPS:
        if key in device_name:
            return tflops * 1e12
    return None


def measure(backbone: str, output_stride: int, size: tuple[int, int], batch: int, device_name: str,
            steps: int, warmup: int) -> dict[str, Any]:
    """images/s and FLOPs per image of ``TrainStep`` for one setting."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from mtl_perception.model import build_model

    from mtl_perception_training.distributed import DistContext
    from mtl_perception_training.optim import build_optimizer
    from mtl_perception_training.trainer import TrainStep
    from mtl_perception_training.weighting import build_weighting

    device = torch.device(device_name)
    cuda = device.type == "cuda"
    torch.manual_seed(0)
    model = build_model({"backbone": backbone, "output_stride": output_stride})
    weighting = build_weighting({"method": "uncertainty", "form": "paper"}, model.tasks)
    memory_format = torch.channels_last if cuda else torch.contiguous_format
    model.to(device, memory_format=memory_format).train()
    weighting.to(device)
    step_module = TrainStep(model, weighting, DistContext(0, 0, 1, device))
    optimizer = build_optimizer(
        {"name": "sgd", "lr": 1e-3, "momentum": 0.9, "weight_decay": 1e-4}, model, weighting
    )
    data = _random_batch(batch, *size, device)
    data["image"] = data["image"].contiguous(memory_format=memory_format)

    def autocast() -> Any:
        return torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext()

    def step() -> None:
        with autocast():
            total, _ = step_module(data)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    counter = FlopCounterMode(display=False)
    with counter:
        step()
    for _ in range(warmup):
        step()
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    seconds = (time.perf_counter() - start) / steps
    flops = counter.get_total_flops()
    return {
        "backbone": backbone,
        "output_stride": output_stride,
        "height": size[0],
        "width": size[1],
        "batch_size": batch,
        "device": device_name,
        "precision": "bf16-autocast" if cuda else "fp32",
        "threads": None if cuda else torch.get_num_threads(),
        "step_ms": round(seconds * 1e3, 2),
        "images_per_s": round(batch / seconds, 2),
        "train_gflops_per_image": round(flops / batch / 1e9, 2),
        "achieved_tflops": round(flops / seconds / 1e12, 3),
    }


def _run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    results = [measure("resnet18", 16, (128, 256), args.batch_size, "cpu", args.steps, args.warmup)]
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        peak = _peak_flops(name, args.peak_tflops)
        for backbone in ("resnet50", "resnet101"):
            for size in ((128, 256), (256, 512)):
                r = measure(backbone, 8, size, args.gpu_batch_size, "cuda", max(args.steps, 10), max(args.warmup, 3))
                r["mfu"] = round(r["achieved_tflops"] * 1e12 / peak, 4) if peak else None
                results.append(r)
    return {"results": results}


BENCHMARK = Benchmark(
    help="training step throughput (images/s; GPU: also MFU) for the trainer's step",
    add_arguments=_add_arguments,
    run=_run,
)
