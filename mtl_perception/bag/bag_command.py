"""``mtl-perception bag make|eval``: datasets to rosbag2 recordings, recordings through the perception.

``make`` turns a Cityscapes-layout split into a bag that replays like the car's camera, with
the ground truth on its own topics (see ``bag/make.py`` for topics and encodings).
``eval`` runs a bag (ours or anyone's) through the perception and writes a report (JSON,
markdown, plots) and optionally the outputs as a bag: offline (every frame through the
Pipeline, as fast as possible, deterministic) or ``--live`` (through the running ROS node at
the recorded timing, measuring latency and drops as a vehicle would see them).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from mtl_perception.bag.topics import DEFAULT_RATE_HZ, DEFAULT_START_TIME_S, OUTPUT_NAMESPACE, STORAGE_NAMES, Topics
from mtl_perception.command import Command
from mtl_perception.errors import UserError
from mtl_perception.io_utils import check_output_path


def _size(args: argparse.Namespace) -> tuple[int, int] | None:
    if (args.height is None) != (args.width is None):
        raise UserError("--height and --width go together (the image size to write)")
    if args.height is None:
        return None
    if args.height < 1 or args.width < 1:
        raise UserError(f"--height and --width must be positive, got {args.height} x {args.width}")
    return args.height, args.width


def _add_make(p: argparse.ArgumentParser) -> None:
    defaults = Topics()
    p.add_argument("--data", type=Path, required=True, help="dataset root in the Cityscapes layout")
    p.add_argument("--split", default="val", help="split to write (default: val)")
    p.add_argument("--sequence", action="store_true", help="write the leftImg8bit_sequence video snippets of the split")
    p.add_argument("--out", type=Path, required=True, help="bag folder to create (must not exist)")
    p.add_argument("--rate", type=float, default=DEFAULT_RATE_HZ, help=f"frames per second (default: {DEFAULT_RATE_HZ:g})")
    p.add_argument("--storage", choices=STORAGE_NAMES, default="mcap", help="rosbag2 storage (default: mcap)")
    p.add_argument("--height", type=int, help="resize images and ground truth to this height (with --width)")
    p.add_argument("--width", type=int, help="resize images and ground truth to this width (with --height)")
    p.add_argument("--image-topic", default=defaults.image, help=f"camera image topic (default: {defaults.image})")
    p.add_argument("--gt-prefix", default=defaults.gt_prefix, help=f"prefix of the ground-truth topics (default: {defaults.gt_prefix})")
    p.add_argument("--frame-id", default=defaults.frame_id, help=f"header frame_id (default: {defaults.frame_id})")
    p.add_argument(
        "--start-time", type=float, default=DEFAULT_START_TIME_S,
        help="stamp of the first frame, seconds since the epoch (default: fixed, so bags are reproducible)",
    )
    p.add_argument("--limit", type=int, help="write at most this many frames")


def _run_make(args: argparse.Namespace) -> int:
    from mtl_perception.bag.make import make_bag

    check_output_path(args.out, "--out", kind="folder", new=True)
    counts = make_bag(
        args.data, args.out, split=args.split, sequence=args.sequence, rate=args.rate, storage=args.storage,
        size=_size(args), topics=Topics(args.image_topic, args.gt_prefix, args.frame_id),
        start_time=args.start_time, limit=args.limit, progress=True,
    )
    print(f"wrote {args.out}: " + ", ".join(f"{topic} {n}" for topic, n in counts.items()))
    return 0


def _add_eval(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bag", type=Path, required=True, help="bag folder, or a bare .mcap / .db3 file")
    p.add_argument("--model", type=Path, help="checkpoint (default: the shipped mtl_perception/models/default.pt)")
    p.add_argument("--image-topic", default="/camera/image", help="camera image topic (default: /camera/image)")
    p.add_argument("--camera-info-topic", help="CameraInfo topic (default: camera_info beside the image topic)")
    p.add_argument("--gt-prefix", default="/gt", help="prefix of the ground-truth topics (default: /gt)")
    p.add_argument("--out", type=Path, help="write the perception's outputs into this new MCAP bag")
    p.add_argument("--namespace", default=OUTPUT_NAMESPACE, help=f"namespace of the output topics (default: {OUTPUT_NAMESPACE})")
    p.add_argument("--report", type=Path, help="report folder: report.json, summary.md, plots (default: print only)")
    p.add_argument(
        "--backend", choices=("auto", "torch", "onnxruntime", "tensorrt"), default="auto",
        help="offline: inference backend, as the node's 'backend' parameter (default: auto)",
    )
    p.add_argument("--device", default="auto", help="offline: auto (GPU if present), cpu, cuda or cuda:N")
    p.add_argument("--live", action="store_true", help="replay through the ROS node over real topics")
    p.add_argument("--rate-factor", type=float, default=1.0, help="live: replay F times faster than recorded (default: 1)")
    p.add_argument("--node-arg", action="append", default=[], metavar="NAME:=VALUE", help="live: extra node parameter (repeatable)")
    p.add_argument("--limit", type=int, help="evaluate at most this many frames")


def _run_eval(args: argparse.Namespace) -> int:
    from mtl_perception.bag.report import markdown_summary, write_report

    if args.out:
        check_output_path(args.out, "--out", kind="folder", new=True)
    if args.report:
        check_output_path(args.report, "--report", kind="folder")
    if args.rate_factor <= 0:
        raise UserError(f"--rate-factor must be positive, got {args.rate_factor}")
    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit must be at least 1, got {args.limit}")
    model = args.model
    if model is None:
        from mtl_perception.inference.factory import default_model_path

        model = default_model_path()
    if not model.is_file():
        raise UserError(f"model not found: {model} (pass --model PATH)")
    if args.live:
        from mtl_perception.bag.live_eval import evaluate_live

        if args.backend != "auto" or args.device != "auto":
            raise UserError("--backend and --device are offline options; live: --node-arg backend:=... --node-arg device:=...")
        report, examples = evaluate_live(
            args.bag, model, image_topic=args.image_topic, gt_prefix=args.gt_prefix,
            camera_info_topic=args.camera_info_topic, out_bag=args.out, namespace=args.namespace,
            rate_factor=args.rate_factor, node_params=args.node_arg, limit=args.limit,
        )
    else:
        if args.node_arg:
            raise UserError("--node-arg applies to --live only (offline: --backend, --device)")
        from mtl_perception.bag.offline_eval import evaluate_offline

        report, examples = evaluate_offline(
            args.bag, model, image_topic=args.image_topic, gt_prefix=args.gt_prefix,
            camera_info_topic=args.camera_info_topic, out_bag=args.out, namespace=args.namespace,
            backend=args.backend, device=args.device, limit=args.limit,
        )
    if args.report:
        summary = write_report(args.report, report, examples)
        print(summary.read_text(encoding="utf-8"))
    else:
        print(markdown_summary(report))
    return 0


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bag_command", metavar="{make,eval}")
    sub.required = True
    make = sub.add_parser("make", help="write a dataset split as a rosbag2 camera recording with ground truth")
    _add_make(make)
    make.set_defaults(_bag_run=_run_make)
    ev = sub.add_parser("eval", help="run a bag through the perception; report speed and accuracy")
    _add_eval(ev)
    ev.set_defaults(_bag_run=_run_eval)


def _run(args: argparse.Namespace) -> int:
    return args._bag_run(args)


COMMAND = Command(
    help="rosbag2: make bags from datasets, evaluate the perception on bags",
    add_arguments=_add_arguments,
    run=_run,
    description=__doc__,
)
