"""``mtl-perception bench data``: training samples per second through a torch DataLoader.

Measures the reader as training uses it (training augmentation on, DataLoader workers, default
collate) at 128x256 (the paper's Tiny Cityscapes) and 256x512, both straight from the PNGs and
from a warm sample cache. Worker start-up and the first batch are excluded: they are paid
once per run, not per sample. Without ``--data`` a temporary synthetic set at the Cityscapes
resolution is generated, so the PNG decoding cost is the real one.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from mtl_perception.benchmarks.base import Benchmark
from mtl_perception.errors import UserError

SIZES = ((128, 256), (256, 512))
TRAIN_AUGMENT = {"scale": [0.75, 1.5], "flip": True, "color_jitter": 0.2}


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", type=Path, default=None, help="Cityscapes-layout root (default: a temporary synthetic set)"
    )
    parser.add_argument("--split", default="train", help="split to read (default: train)")
    parser.add_argument("--samples", type=int, default=256, help="samples timed from the cache (default: 256)")
    parser.add_argument("--png-samples", type=int, default=64, help="samples timed from PNG (default: 64)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers (default: 2)")
    parser.add_argument("--batch-size", type=int, default=8, help="DataLoader batch size (default: 8)")
    parser.add_argument("--synth-images", type=int, default=8, help="images in the synthetic set (default: 8)")
    parser.add_argument(
        "--synth-size", type=int, nargs=2, default=(1024, 2048), metavar=("H", "W"),
        help="resolution of the synthetic set (default: 1024 2048, as Cityscapes)",
    )


def _samples_per_second(dataset, samples: int, workers: int, batch_size: int) -> float:
    """Samples/s through a DataLoader after the first batch (worker start-up excluded)."""
    from torch.utils.data import DataLoader

    indices = [i % len(dataset) for i in range(samples + batch_size)]
    loader = DataLoader(dataset, batch_size=batch_size, sampler=indices, num_workers=workers)
    iterator = iter(loader)
    next(iterator)
    count, start = 0, time.perf_counter()
    for batch in iterator:
        count += len(batch["stem"])
    return round(count / (time.perf_counter() - start), 1)


def _cpu_ms_per_sample(dataset, samples: int) -> float:
    """CPU time of one sample in this process: comparable across runs even on a busy machine."""
    dataset[0]
    start = time.process_time()
    for i in range(samples):
        dataset[i % len(dataset)]
    return round((time.process_time() - start) / samples * 1000, 2)


def _measure(root: Path, args: argparse.Namespace, cache_root: Path) -> dict[str, Any]:
    from mtl_perception.data.cityscapes import CityscapesDataset

    results: dict[str, Any] = {}
    png_samples = min(args.samples, args.png_samples)
    for size in SIZES:
        key = f"{size[0]}x{size[1]}"
        png = CityscapesDataset(root, args.split, size, augment=TRAIN_AUGMENT)
        cached = CityscapesDataset(root, args.split, size, augment=TRAIN_AUGMENT, cache_dir=cache_root)
        start = time.perf_counter()
        for i in range(len(cached)):  # fill the cache (single process)
            cached.source(i)
        fill_s = time.perf_counter() - start
        results[key] = {
            "png_samples_per_s": _samples_per_second(png, png_samples, args.workers, args.batch_size),
            "cache_samples_per_s": _samples_per_second(cached, args.samples, args.workers, args.batch_size),
            "png_cpu_ms_per_sample": _cpu_ms_per_sample(png, max(1, png_samples // 8)),
            "cache_cpu_ms_per_sample": _cpu_ms_per_sample(cached, max(1, args.samples // 4)),
            "cache_fill_s_per_image": round(fill_s / len(cached), 4),
        }
        print(key, results[key], flush=True)
    return results


def _run(args: argparse.Namespace) -> dict[str, Any]:
    if min(args.samples, args.png_samples, args.batch_size) < 1 or args.workers < 0:
        raise UserError("--samples, --png-samples and --batch-size must be >= 1, --workers >= 0")
    settings = {
        "split": args.split, "samples": args.samples, "workers": args.workers,
        "batch_size": args.batch_size, "augment": TRAIN_AUGMENT, "load_average_before": os.getloadavg()[0],
    }
    with tempfile.TemporaryDirectory(prefix="mtl_bench_data_") as tmp:
        root = args.data
        if root is None:
            from mtl_perception.data.synth import generate_dataset

            root = Path(tmp) / "synth"
            height, width = args.synth_size
            generate_dataset(
                root, train=args.synth_images, val=0, height=height, width=width, seed=0, workers=max(1, args.workers)
            )
            settings.update(data="synthetic", synth_images=args.synth_images, synth_size=[height, width])
        else:
            settings["data"] = str(root)
        results = _measure(root, args, Path(tmp) / "cache")
    # Other processes share the cores: a high load average means the samples/s are low bounds.
    settings["load_average_after"] = os.getloadavg()[0]
    return {"settings": settings, "results": results}


BENCHMARK = Benchmark(
    help="dataset reader throughput (samples/s) from PNG and from the sample cache",
    add_arguments=_add_arguments,
    run=_run,
)
