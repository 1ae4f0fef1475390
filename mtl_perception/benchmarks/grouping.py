"""``mtl-perception bench grouping``: time and AP of each grouping method, on noisy ground-truth
votes and on a model's outputs.

Noisy ground truth (``source: noisy_gt``): synthetic street layouts drawn here (numpy): stuff
bands, thing objects as rectangles and ellipses sized by perspective and painted far to near
(so near objects occlude far ones), thin poles that split objects in two, sometimes a crowd
region. Votes are the training targets of :mod:`mtl_perception.data.targets` (centroid -
pixel) plus Gaussian noise whose standard deviation is ``noise x sqrt(instance area)``:
regression errors grow with object size, and the same ``noise`` means the same difficulty at
every resolution. Semantics are the ground truth, so AP measures the grouping alone.

Model outputs (``source: model``): synthetic validation scenes (``mtl_perception.data.synth``)
rendered at each resolution, the model run at its training size as the node runs it, and its
semantic logits and instance vectors resized to the resolution (vectors scaled with it): the
input the grouping gets when the node publishes at that resolution. AP here measures model
and grouping together; what compares methods is the difference between them on the same
outputs.

Both methods run with their default settings, on uint8 semantic ids (what the pipeline
passes). AP is the Cityscapes AP of :mod:`mtl_perception.evaluation.instance_ap`, with the
official 100-pixel minimum region scaled from 1024 x 2048 to the frame's size. Times are
wall-clock per frame, median and minimum (the minimum is the one to read on a shared machine,
where other processes stretch the median), with torch limited to ``--threads``, and the minor
page faults per frame (see :mod:`mtl_perception.memory` for why they matter). ``--device cuda``
times ``votes`` on the GPU (the inputs already there, as in the pipeline); OPTICS stays on
the CPU.
"""
from __future__ import annotations

import argparse
import resource
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from mtl_perception.benchmarks.base import Benchmark
from mtl_perception.data.labels import LABEL_ID_TO_TRAIN_ID, label_id
from mtl_perception.errors import UserError

if TYPE_CHECKING:  # torch is imported when a bench runs, not when the CLI lists its commands
    import torch

RESOLUTIONS = ((128, 256), (256, 512), (512, 1024))
#: (class name, share of objects, width / height of its shape)
_OBJECTS = (
    ("car", 0.40, 1.8),
    ("person", 0.30, 0.4),
    ("bicycle", 0.08, 1.4),
    ("rider", 0.06, 0.5),
    ("truck", 0.06, 1.5),
    ("bus", 0.04, 2.2),
    ("motorcycle", 0.06, 1.3),
)
#: Object height at the bottom edge of the image, as a fraction of the image height.
_HEIGHT_AT_BOTTOM = {
    "car": 0.35, "person": 0.45, "bicycle": 0.25, "rider": 0.45, "truck": 0.55, "bus": 0.6, "motorcycle": 0.25,
}


def synthetic_layout(height: int, width: int, rng: np.random.Generator, objects: int | None = None) -> np.ndarray:
    """gtFine-style instanceIds (H, W) int32 of a random street layout (see the module doc)."""
    ids = np.full((height, width), label_id("road"), dtype=np.int32)
    horizon = int(0.45 * height)
    ids[: horizon] = label_id("building")
    ids[: int(0.2 * height)] = label_id("sky")
    ids[horizon : horizon + max(1, height // 20)] = label_id("sidewalk")
    rows, cols = np.mgrid[:height, :width]
    names = [o[0] for o in _OBJECTS]
    shares = np.array([o[1] for o in _OBJECTS])
    count = int(rng.integers(10, 26)) if objects is None else objects
    bottoms = np.sort(rng.uniform(horizon + 0.05 * height, 1.05 * height, size=count))  # far to near
    next_k: dict[int, int] = {}
    for bottom in bottoms:
        i = int(rng.choice(len(names), p=shares / shares.sum()))
        name, _, aspect = _OBJECTS[i]
        scale = (bottom - horizon) / (height - horizon)
        h = max(4.0, _HEIGHT_AT_BOTTOM[name] * height * scale * rng.uniform(0.8, 1.2))
        w = max(3.0, h * aspect * rng.uniform(0.8, 1.2))
        cx = rng.uniform(-0.1 * w, width + 0.1 * w)
        label = label_id(name)
        if rng.random() < 0.5:
            inside = (np.abs(cols - cx) <= w / 2) & (rows <= bottom) & (rows >= bottom - h)
        else:
            inside = ((cols - cx) / (w / 2)) ** 2 + ((rows - (bottom - h / 2)) / (h / 2)) ** 2 <= 1
        if rng.random() < 0.05:
            ids[inside] = label  # a crowd region (group id < 1000)
            continue
        next_k[label] = next_k.get(label, 0) + 1
        ids[inside] = label * 1000 + next_k[label]
    for _ in range(int(rng.integers(1, 4))):  # poles in front: split objects
        x0 = int(rng.integers(0, width))
        ids[int(0.25 * height) :, x0 : x0 + max(1, width // 128)] = label_id("pole")
    return ids


def noisy_votes(instance_ids: np.ndarray, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(vectors (2, H, W) float32 = target + N(0, (noise * sqrt(area))^2), semantic train ids (H, W))."""
    from mtl_perception.data.targets import View, instance_centroids, instance_vectors

    size = instance_ids.shape
    vectors, mask = instance_vectors(instance_ids, instance_centroids(instance_ids), View(scaled=size), size)
    area = np.bincount(instance_ids.ravel())[instance_ids]
    sigma = np.where(instance_ids >= 1000, noise * np.sqrt(area), noise * 4.0).astype(np.float32)
    vectors = vectors + rng.standard_normal(vectors.shape).astype(np.float32) * sigma
    label = np.where(instance_ids >= 1000, instance_ids // 1000, instance_ids)
    return vectors, LABEL_ID_TO_TRAIN_ID[label].astype(np.int64)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--frames", type=int, default=3, help="frames per resolution (default 3)")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per frame for votes (default 10)")
    parser.add_argument("--noise", type=float, default=0.05, help="vote noise std as a fraction of sqrt(area) (default 0.05)")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (default 1, what the pipeline's post-processing uses)"
    )
    parser.add_argument("--methods", nargs="+", default=["votes", "optics"], help="grouping methods (default: votes optics)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic frames and noise (default 0)")
    parser.add_argument(
        "--model-frames", type=int, default=2,
        help="synthetic scenes per resolution grouped from the model's outputs (default 2; 0 = noisy votes only)",
    )
    parser.add_argument("--model", type=Path, default=None, help="model for --model-frames (default: the shipped model)")
    parser.add_argument(
        "--device", default="auto",
        help="where votes group: auto (default: the GPU if there is one), cpu or cuda; OPTICS (scikit-learn) runs on the CPU",
    )


#: One frame to group: gtFine instanceIds, vectors (1, 2, H, W), semantic uint8 (1, H, W), confidence or None.
GroupingInput = tuple[np.ndarray, "torch.Tensor", "torch.Tensor", "torch.Tensor | None"]


def noisy_frames(height: int, width: int, args: argparse.Namespace) -> list[GroupingInput]:
    """``args.frames`` synthetic layouts with noisy ground-truth votes (see the module doc)."""
    import torch

    rng = np.random.default_rng(args.seed)
    frames = []
    for _ in range(args.frames):
        gt = synthetic_layout(height, width, rng)
        vectors, semantic = noisy_votes(gt, args.noise, rng)
        frames.append((gt, torch.from_numpy(vectors)[None], torch.from_numpy(semantic.astype(np.uint8))[None], None))
    return frames


def model_frames(height: int, width: int, args: argparse.Namespace, pipeline: Any) -> list[GroupingInput]:
    """The model's outputs on ``args.model_frames`` synthetic val scenes, at ``height`` x ``width``.

    The network runs at its own size; logits are resized bilinearly, vectors bilinearly and
    multiplied by the size ratio (they are in pixels), as the grouping would see them if the
    network had produced them at this resolution.
    """
    import torch
    import torch.nn.functional as F

    from mtl_perception.data.synth.generate import render_image

    frames = []
    for index in range(args.model_frames):
        scene = render_image("val", index, height, width, args.seed)
        raw = pipeline.run_batch(scene.rgb[None], size=pipeline.network_size)
        net_h, net_w = raw["instance"].shape[-2:]
        vectors = F.interpolate(raw["instance"].float(), size=(height, width), mode="bilinear", align_corners=False)
        vectors *= torch.tensor([width / net_w, height / net_h]).view(1, 2, 1, 1)
        logits = F.interpolate(raw["semantic"].float(), size=(height, width), mode="bilinear", align_corners=False)
        confidence, semantic = logits.softmax(1).max(1)
        frames.append((scene.instance_ids.astype(np.int32), vectors, semantic.to(torch.uint8), confidence))
    return frames


def _time_method(
    method: str, frames: list[GroupingInput], repeats: int, height: int, width: int, device: "torch.device"
) -> dict[str, Any]:
    """Median and minimum time per frame of one method on ``frames`` (inputs already on ``device``), and its AP.

    On a GPU the clock stops after ``torch.cuda.synchronize``: the time until the instances
    exist, not until the kernels were queued.
    """
    import torch

    from mtl_perception.evaluation.instance_ap import InstanceAP, scaled_min_region_size
    from mtl_perception.postprocess.grouping import build_grouper

    def synchronize() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    grouper = build_grouper(method)
    on_device = [(gt, *(None if t is None else t.to(device) for t in tensors)) for gt, *tensors in frames]
    if repeats > 1:  # warm-up
        grouper(*on_device[0][1:])
    times, ap = [], InstanceAP(min_region_size=scaled_min_region_size(height, width))
    faults = 0
    for gt, vectors, semantic, confidence in on_device:
        for _ in range(repeats):
            faults -= resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            synchronize()
            start = time.perf_counter()
            instances = grouper(vectors, semantic, confidence)[0]
            synchronize()
            times.append(time.perf_counter() - start)
            faults += resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        ap.add(instances.labels.cpu().numpy(), instances.classes.cpu().numpy(), instances.scores.cpu().numpy(), gt)
    result = ap.result()
    return {
        "ms": round(1e3 * statistics.median(times), 2), "ms_min": round(1e3 * min(times), 2),
        "page_faults_per_frame": round(faults / len(times)), "AP": result["AP"], "AP50": result["AP50"],
    }


def _run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    if args.frames < 1 or args.repeats < 1 or args.threads < 1 or args.noise < 0 or args.model_frames < 0:
        raise UserError("--frames, --repeats and --threads must be >= 1, --noise and --model-frames >= 0")

    from mtl_perception.inference.backend import resolve_device

    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    sources: list[tuple[str, Callable[[int, int], list[GroupingInput]]]] = [("noisy_gt", lambda h, w: noisy_frames(h, w, args))]
    model = None
    if args.model_frames:
        from mtl_perception.inference.factory import create_backend
        from mtl_perception.inference.pipeline import Pipeline

        pipeline = Pipeline(create_backend("torch", args.model, "cpu"))
        model = str(args.model or "shipped default model")
        sources.append(("model", lambda h, w: model_frames(h, w, args, pipeline)))
    rows = []
    for height, width in RESOLUTIONS:
        for source, make_frames in sources:
            frames = make_frames(height, width)
            for method in args.methods:
                # OPTICS takes seconds per frame: one run each, no warm-up (nothing to warm).
                repeats, where = (args.repeats, device) if method == "votes" else (1, torch.device("cpu"))
                rows.append({
                    "method": method, "source": source, "resolution": f"{height}x{width}", "device": str(where),
                    **_time_method(method, frames, repeats, height, width, where),
                })
                print(rows[-1], flush=True)
    return {
        "noise": args.noise, "frames": args.frames, "model_frames": args.model_frames, "model": model,
        "threads": args.threads, "device": str(device), "results": rows, "votes_vs_optics": _comparison(rows),
    }


def _comparison(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per resolution with both methods: how many times faster ``votes`` is, and its AP minus OPTICS'."""
    by_key = {(r["method"], r["source"], r["resolution"]): r for r in rows}
    out = []
    for (method, source, resolution), votes in by_key.items():
        optics = by_key.get(("optics", source, resolution))
        if method != "votes" or optics is None:
            continue
        ap_difference = None if None in (votes["AP"], optics["AP"]) else round(votes["AP"] - optics["AP"], 4)
        speedup = round(optics["ms_min"] / votes["ms_min"], 1)
        out.append({
            "source": source, "resolution": resolution,
            "optics_ms_over_votes_ms": speedup, "AP_votes_minus_optics": ap_difference,
        })
    return out


BENCHMARK = Benchmark(
    help="instance grouping: time and AP per method and resolution", add_arguments=_add_arguments, run=_run
)
