"""``mtl-perception evaluate``: the paper's Table-1 metrics of a model on a dataset split.

Prints ``miou``, ``instance_err_px``, ``disparity_err_px``, ``disparity_rmse_px`` and the
per-class IoU as a table; ``--json OUT`` writes the same numbers under the same key names
(``iou_<class>`` per class, ``null`` where a value is undefined) plus what was evaluated.
The model defaults to the one shipped in the package (``mtl_perception/models/default.pt``)
and the image size to the size it was trained at.
"""
from __future__ import annotations

import argparse
import json
import math
from importlib.resources import files
from pathlib import Path
from typing import Any

from mtl_perception.command import Command
from mtl_perception.errors import UserError

HEADLINE = ("miou", "instance_err_px", "disparity_err_px", "disparity_rmse_px")


def default_model_path() -> Path:
    """The model shipped as package data (may be absent in a development checkout)."""
    return Path(str(files("mtl_perception") / "models" / "default.pt"))


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="dataset root in the Cityscapes layout")
    parser.add_argument("--split", default="val", help="split to evaluate (default: val)")
    parser.add_argument("--model", type=Path, help="checkpoint (default: the shipped mtl_perception/models/default.pt)")
    parser.add_argument("--height", type=int, help="input height (default: the model's training height)")
    parser.add_argument("--width", type=int, help="input width (default: the model's training width)")
    parser.add_argument("--json", type=Path, help="also write the metrics as JSON here")
    parser.add_argument("--batch-size", type=int, default=4, help="images per forward pass (default: 4)")
    parser.add_argument("--workers", type=int, default=2, help="data loading processes (default: 2)")
    parser.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda or cuda:N")


def _json_value(value: float) -> float | None:
    return None if math.isnan(value) else value


def format_table(metrics: dict[str, float]) -> str:
    """Headline metrics, then per-class IoU, as aligned text."""
    lines = [f"{k:<20}{metrics[k]:>10.4f}" for k in HEADLINE if k in metrics]
    per_class = [(k[4:], v) for k, v in metrics.items() if k.startswith("iou_")]
    if per_class:
        lines.append("per-class IoU:")
        lines += [f"  {name:<18}{'n/a' if math.isnan(v) else f'{v:.4f}':>10}" for name, v in per_class]
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> int:
    import torch
    from torch.utils.data import DataLoader

    from mtl_perception.data.cityscapes import CityscapesDataset
    from mtl_perception.evaluation.evaluator import accumulate
    from mtl_perception.io_utils import atomic_write_text
    from mtl_perception.model.checkpoint import load_model

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
    device_name = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device_name)
    except RuntimeError:
        raise UserError(f"--device: unknown device {args.device!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {args.device}: torch sees no CUDA GPU; use auto or cpu")
    model, config = load_model(model_path, device)
    data_cfg = config.get("data", {})
    height = args.height or data_cfg.get("height")
    width = args.width or data_cfg.get("width")
    if not height or not width:
        raise UserError(f"{model_path} does not record its training size; pass --height and --width")
    dataset = CityscapesDataset(args.data, args.split, (height, width))
    loader = DataLoader(dataset, batch_size=args.batch_size, num_workers=args.workers)
    metrics = accumulate(model, loader, device, model.tasks).compute()

    print(f"model {model_path}  data {args.data} [{args.split}, {len(dataset)} images, {height}x{width}]")
    print(format_table(metrics))
    if args.json:
        report: dict[str, Any] = {k: _json_value(v) for k, v in metrics.items()}
        report.update(
            model=str(model_path), data=str(args.data), split=args.split, images=len(dataset), height=height, width=width
        )
        atomic_write_text(args.json, json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


COMMAND = Command(
    help="Table-1 metrics (mIoU, instance and disparity errors) of a model on a dataset split",
    add_arguments=_add_arguments,
    run=_run,
)
