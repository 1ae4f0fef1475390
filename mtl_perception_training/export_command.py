"""``mtl-perception export``: checkpoint -> ONNX (+ TensorRT engine) with the model's facts inside."""
from __future__ import annotations

import argparse
from pathlib import Path

from mtl_perception.command import Command
from mtl_perception.errors import UserError

DESCRIPTION = """\
Export a training checkpoint to ONNX (opset 18, torch.onnx dynamo exporter) with the model's
facts (tasks, classes, input size, normalisation, output stride, config hash, flags, training
camera) in its metadata, so every backend reads them back. Fixed size: the training size, or
--height/--width; --dynamic: any batch, height and width. --raw-input: the graph takes uint8
RGB NHWC (B, H, W, 3) camera bytes and normalises itself. --argmax: the graph outputs uint8
class ids instead of logits. --engine: also build a TensorRT engine on this GPU (prints the
equivalent trtexec command). --precision fp16: half-precision ONNX (what TensorRT 11 builds
fp16 engines from); on TensorRT 10 an engine uses the FP16 builder flag instead.
"""


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, required=True, help="training checkpoint (.pt)")
    parser.add_argument("--onnx", type=Path, required=True, help="ONNX file to write")
    size = parser.add_argument_group("input size (default: fixed at the training size)")
    size.add_argument("--height", type=int, help="fixed input height")
    size.add_argument("--width", type=int, help="fixed input width")
    size.add_argument("--dynamic", action="store_true", help="dynamic batch, height and width")
    parser.add_argument("--raw-input", action="store_true", help="fold normalisation in: uint8 RGB NHWC input")
    parser.add_argument("--argmax", action="store_true", help="fold the semantic argmax in: uint8 ids output")
    parser.add_argument("--precision", choices=("fp32", "fp16"), default="fp32", help="default: fp32")
    parser.add_argument(
        "--fx", type=float, help="training camera focal length (px at the export width), if not in the config"
    )
    parser.add_argument("--baseline", type=float, help="training camera stereo baseline (m), if not in the config")
    parser.add_argument("--engine", type=Path, help="also build this TensorRT engine (needs TensorRT and a GPU)")
    parser.add_argument("--max-batch", type=int, default=1, help="largest batch the engine accepts (dynamic ONNX)")
    parser.add_argument(
        "--cache-dir", type=Path, help="TensorRT timing cache location (default: ~/.cache/mtl_perception)"
    )
    parser.add_argument("--no-verify", action="store_true", help="skip the onnxruntime vs torch check")


def _run(args: argparse.Namespace) -> int:
    from mtl_perception.inference.metadata import check_camera
    from mtl_perception.io_utils import check_output_path

    from mtl_perception_training.export import export

    for name in ("height", "width", "max_batch"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UserError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    # Refused before the (slow) export; 1.0 stands in for a value taken from the checkpoint.
    check_camera(1.0 if args.fx is None else args.fx, 1.0 if args.baseline is None else args.baseline)
    check_output_path(args.onnx, "--onnx")
    if args.engine:
        check_output_path(args.engine, "--engine")
    export(
        args.checkpoint,
        args.onnx,
        height=args.height,
        width=args.width,
        dynamic=args.dynamic,
        raw_input=args.raw_input,
        argmax=args.argmax,
        precision=args.precision,
        camera_fx=args.fx,
        camera_baseline=args.baseline,
        engine=args.engine,
        max_batch=args.max_batch,
        cache_dir=args.cache_dir,
        verify=not args.no_verify,
    )
    print(f"wrote {args.onnx}")
    return 0


COMMAND = Command(
    help="export a checkpoint to ONNX (and a TensorRT engine)",
    description=DESCRIPTION,
    add_arguments=_add_arguments,
    run=_run,
)
