"""``mtl-perception bench synth``: synthetic scene generation speed (render + write), images/s.

Measured per image size, once in this process with the time split into scene layout,
rendering and file writing, and once through ``generate_dataset`` with several worker
processes (what ``mtl-perception synth`` does). The 1-minute load average is recorded too:
on a shared machine it explains slow numbers.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from mtl_perception.benchmarks.base import Benchmark, parse_sizes
from mtl_perception.errors import UserError


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", default="256x512,128x256", help="image sizes HxW, comma-separated")
    parser.add_argument("--images", type=int, default=96, help="images per measurement (enough to amortise worker start-up)")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="processes for the parallel run")


def _in_process(root: Path, height: int, width: int, images: int) -> dict[str, float]:
    from mtl_perception.data.synth.camera import random_camera
    from mtl_perception.data.synth.generate import _rngs, city
    from mtl_perception.data.synth.render import render
    from mtl_perception.data.synth.scene import random_scene
    from mtl_perception.data.synth.writer import stem, write_frame

    stages = {"scene": 0.0, "render": 0.0, "write": 0.0}
    cpu = time.process_time()
    start = time.perf_counter()
    for i in range(images):
        t0 = time.perf_counter()
        scene_rng, noise_rng = _rngs(1234, "train", i, 0, 19)
        camera = random_camera(scene_rng, height, width)
        scene = random_scene(scene_rng)
        t1 = time.perf_counter()
        frame = render(scene, camera, 0, noise_rng)
        t2 = time.perf_counter()
        write_frame(root, "train", city("train", i), stem(city("train", i), i, 19), frame)
        t3 = time.perf_counter()
        stages["scene"] += t1 - t0
        stages["render"] += t2 - t1
        stages["write"] += t3 - t2
    total = time.perf_counter() - start
    cpu = time.process_time() - cpu
    return {
        "images_per_s": images / total,
        # CPU time per image: what an otherwise idle core would take (the machine may be shared)
        "cpu_ms_per_image": 1000 * cpu / images,
        **{f"ms_{k}": 1000 * v / images for k, v in stages.items()},
    }


def _run(args: argparse.Namespace) -> dict[str, Any]:
    from mtl_perception.data.synth import generate_dataset
    from mtl_perception.data.synth.texture import tiles

    if args.images < 1 or args.workers < 1:
        raise UserError("--images and --workers must be >= 1")
    tiles()  # built once per process; not part of the per-image cost
    results: dict[str, Any] = {"images": args.images, "workers": args.workers, "load_avg_1min_before": os.getloadavg()[0]}
    for height, width in parse_sizes(args.sizes):
        with tempfile.TemporaryDirectory(prefix="synth_bench_") as tmp:
            single = _in_process(Path(tmp) / "single", height, width, args.images)
            start = time.perf_counter()
            generate_dataset(Path(tmp) / "parallel", train=args.images, val=0, height=height, width=width, seed=1234, workers=args.workers)
            parallel = args.images / (time.perf_counter() - start)
        results[f"{height}x{width}"] = {
            "one_process": {k: round(v, 2) for k, v in single.items()},
            f"images_per_s_{args.workers}_workers": round(parallel, 2),
        }
    results["load_avg_1min_after"] = os.getloadavg()[0]
    return results


BENCHMARK = Benchmark(help="synthetic scene generation speed (render + write, images/s)", add_arguments=_add_arguments, run=_run)
