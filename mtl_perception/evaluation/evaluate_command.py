"""``mtl-perception evaluate``: the paper's Table-1 metrics, AP and PQ of a model on a dataset split.

Prints ``miou``, ``instance_err_px``, ``disparity_err_px``, ``disparity_rmse_px``, the
Cityscapes ``AP``/``AP50`` and panoptic ``PQ``/``SQ``/``RQ``, the per-class IoU and AP as a table;
``--json OUT`` writes the same numbers under the same key names (``iou_<class>`` and ``AP_<class>`` per class,
``null`` where a value is undefined) plus what was evaluated. AP and PQ need instances: the
network's instance vectors are grouped with ``--grouping`` (``votes``, the real-time default
the node uses, or ``optics``, the paper's, much slower). ``--cityscapes-results DIR`` also
writes the predictions in the official results format, for ``cityscapesscripts``' own
evaluators (at the evaluated resolution: evaluate at the ground truth's size for them).

The network runs in ``--backend`` (default ``torch``: the checkpoint as trained, the reference;
``onnxruntime`` / ``tensorrt`` check a deployed form, ``auto`` picks as the node does); every
backend's raw outputs at network resolution go through the same metric code, so the numbers
are comparable. The model defaults to the one shipped in the package
(``mtl_perception/models/default.pt``) and the image size to the size it was trained at.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

from mtl_perception.command import Command
from mtl_perception.errors import UserError
from mtl_perception.evaluation.metric_names import DEPTH_METRICS

HEADLINE = ("miou", "instance_err_px", "disparity_err_px", "disparity_rmse_px", *DEPTH_METRICS, "AP", "AP50", "PQ", "SQ", "RQ")


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="dataset root in the Cityscapes layout")
    parser.add_argument("--split", default="val", help="split to evaluate (default: val)")
    parser.add_argument(
        "--model", type=Path,
        help="checkpoint, or for --backend onnxruntime/tensorrt also an exported .onnx / .engine "
        "(default: the shipped mtl_perception/models/default.pt)",
    )
    parser.add_argument("--height", type=int, help="input height (default: the model's training height)")
    parser.add_argument("--width", type=int, help="input width (default: the model's training width)")
    parser.add_argument("--json", type=Path, help="also write the metrics as JSON here")
    parser.add_argument("--batch-size", type=int, default=4, help="images per forward pass (default: 4)")
    parser.add_argument("--workers", type=int, default=2, help="data loading processes (default: 2)")
    parser.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda or cuda:N")
    parser.add_argument(
        "--backend", default="torch",
        help="torch (default: the checkpoint itself), onnxruntime, tensorrt, or auto (the node's choice)",
    )
    parser.add_argument(
        "--grouping", default="votes",
        help="instance grouping for AP/PQ: votes (default, real time) or optics (the paper's, slow)",
    )
    parser.add_argument(
        "--cityscapes-results", type=Path, metavar="DIR",
        help="also write the predictions in the official Cityscapes results format under DIR",
    )


def _json_value(value: float) -> float | None:
    return None if math.isnan(value) else value


def _number(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.4f}"


def format_table(metrics: dict[str, float]) -> str:
    """Headline metrics, then per-class IoU, as aligned text."""
    lines = [f"{k:<20}{_number(metrics[k]):>10}" for k in HEADLINE if k in metrics]
    per_class = [(k[4:], v) for k, v in metrics.items() if k.startswith("iou_")]
    if per_class:
        lines.append("per-class IoU:")
        lines += [f"  {name:<18}{_number(v):>10}" for name, v in per_class]
    per_class_ap = [(k[3:], v) for k, v in metrics.items() if k.startswith("AP_")]
    if per_class_ap:
        lines.append("per-class AP:")
        lines += [f"  {name:<18}{_number(v):>10}" for name, v in per_class_ap]
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> int:
    from torch.utils.data import DataLoader

    from mtl_perception.data.cityscapes import CityscapesDataset
    from mtl_perception.evaluation.cityscapes_results import CityscapesResultsWriter
    from mtl_perception.evaluation.evaluator import InstanceScoring, evaluate, in_batches_of
    from mtl_perception.inference.factory import create_backend, default_model_path
    from mtl_perception.inference.pipeline import Pipeline
    from mtl_perception.io_utils import atomic_write_text, check_output_path
    from mtl_perception.postprocess.grouping import build_grouper

    model_path = args.model or default_model_path()
    if args.model is None and not model_path.is_file():
        raise UserError(
            f"no default model shipped at {model_path}; pass --model PATH "
            "(e.g. runs/synthetic/best.pt from `mtl-perception train`)"
        )
    for name in ("height", "width", "batch_size"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UserError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    if args.workers < 0:
        raise UserError(f"--workers must be >= 0, got {args.workers}")
    if args.json:
        check_output_path(args.json, "--json")
    if args.cityscapes_results:
        check_output_path(args.cityscapes_results, "--cityscapes-results", kind="folder")
    grouper = build_grouper(args.grouping)  # refuses an unknown method before the model loads
    backend = create_backend(args.backend, model_path, args.device)
    meta = backend.metadata
    height = args.height or meta.height
    width = args.width or meta.width
    if not height or not width:
        raise UserError(f"{model_path} does not record its training size; pass --height and --width")
    # Runs the network at the dataset's size; refuses a fixed-size model at another size.
    pipeline = Pipeline(backend, network_size=(height, width))
    grouped = {"semantic", "instance"} <= set(meta.tasks)
    if args.cityscapes_results and not grouped:
        raise UserError(
            f"--cityscapes-results needs a model with semantic and instance heads; {model_path} has {list(meta.tasks)}"
        )
    dataset = CityscapesDataset(args.data, args.split, (height, width))
    loader = DataLoader(dataset, batch_size=args.batch_size, num_workers=args.workers)

    writer = CityscapesResultsWriter(args.cityscapes_results, args.split) if args.cityscapes_results else None
    instances = InstanceScoring(grouper, (height, width), writer) if grouped else None
    start = time.perf_counter()
    # A fixed-shape export takes batch 1 (so do the engines built for it): run it at that batch.
    model_batch = None if meta.dynamic and backend.name != "tensorrt" else 1
    forward = in_batches_of(lambda image: pipeline.run_batch(image, normalized=True), model_batch)
    accumulator = evaluate(forward, loader, backend.device, meta.tasks, instances, refuse_nonfinite=True)
    seconds = time.perf_counter() - start
    if writer is not None:
        writer.close()
    metrics = accumulator.compute()
    if instances is not None:
        metrics.update(instances.result())

    print(
        f"model {model_path} [{backend.describe()}]  data {args.data} [{args.split}, {len(dataset)} images, "
        f"{height}x{width}]  {seconds:.1f} s"
    )
    print(format_table(metrics))
    if writer is not None:
        print(f"wrote Cityscapes results to {args.cityscapes_results}")
    if args.json:
        report: dict[str, Any] = {k: _json_value(v) for k, v in metrics.items()}
        report.update(
            model=str(model_path), backend=backend.name, data=str(args.data), split=args.split, images=len(dataset),
            height=height, width=width, seconds=round(seconds, 3),
        )
        if instances is not None:
            report.update(grouping=args.grouping, min_region_size=instances.min_region_size)
        atomic_write_text(args.json, json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


COMMAND = Command(
    help="Table-1 metrics (mIoU, instance and disparity errors), Cityscapes AP and PQ of a model on a dataset split",
    add_arguments=_add_arguments,
    run=_run,
)
