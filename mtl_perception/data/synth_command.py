"""``mtl-perception synth``: write procedurally rendered street scenes in the Cityscapes layout.

The default dataset of the project: it needs no download, and the same seed always gives the
same bytes. See ``mtl_perception.data.synth`` for what the scenes contain.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from mtl_perception.command import Command
from mtl_perception.data.cityscapes_camera import CITYSCAPES_BASELINE


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="dataset root to write (created if missing)")
    parser.add_argument("--train", type=int, default=8, help="train images (with --sequence: train sequences)")
    parser.add_argument("--val", type=int, default=4, help="val images (with --sequence: val sequences)")
    parser.add_argument("--height", type=int, default=256, help="image height in pixels")
    parser.add_argument("--width", type=int, default=512, help="image width in pixels (intrinsics scale with it)")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same files")
    parser.add_argument("--sequence", action="store_true", help="write driving sequences (camera moves forward each frame)")
    parser.add_argument("--frames", type=int, default=30, help="frames per sequence (with --sequence)")
    parser.add_argument(
        "--baseline", type=float, default=CITYSCAPES_BASELINE,
        help=f"the rig's stereo baseline in metres, the same for every scene (default: Cityscapes' {CITYSCAPES_BASELINE})",
    )
    parser.add_argument(
        "--rare", type=int, default=0,
        help="extra rounds of thin and rare objects per scene (signs, traffic lights, persons, cyclists, bicycles)",
    )
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="parallel processes")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _run(args: argparse.Namespace) -> int:
    from mtl_perception.data.synth import generate_dataset, generate_sequence
    from mtl_perception.data.synth.generate import SceneOptions

    common = dict(
        height=args.height, width=args.width, seed=args.seed, workers=args.workers, progress=not args.quiet,
        options=SceneOptions(baseline=args.baseline, rare=args.rare),
    )
    if args.sequence:
        n = generate_sequence(args.out, frames=args.frames, train=args.train, val=args.val, **common)
        what = f"{args.train + args.val} sequence(s), {n} frames"
    else:
        n = generate_dataset(args.out, train=args.train, val=args.val, **common)
        what = f"{n} images ({args.train} train, {args.val} val)"
    print(f"wrote {what} at {args.height}x{args.width} to {args.out}")
    return 0


COMMAND = Command(
    help="write synthetic street scenes (Cityscapes layout: images, labels, instances, disparity, camera)",
    add_arguments=_add_arguments,
    run=_run,
)
