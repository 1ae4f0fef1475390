"""``mtl-perception release``: the command line of ``mtl_perception_training.release``.

Kept apart from the work so that ``mtl-perception --help`` does not import torch.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from mtl_perception.command import Command
from mtl_perception.errors import UserError
from mtl_perception.io_utils import check_output_path

DESCRIPTION = """A training checkpoint -> the small file a vehicle (or the package) ships.

Keeps what load_model needs (config, weights), what users want to see (step, metrics) and the
learned task weights (so fine-tuning from the release with train.init_from carries them over);
drops the optimiser and RNG state, and stores the weights compactly (int8 per output channel
for large weights, float16 for the rest)."""


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, required=True, help="training checkpoint (best.pt or last.pt)")
    parser.add_argument("--out", type=Path, required=True, help="release file to write")
    parser.add_argument("--weights", choices=("int8", "fp16"), default="int8", help="weight storage (default: int8)")


def _run(args: argparse.Namespace) -> int:
    if args.out.resolve() == args.checkpoint.resolve():
        raise UserError("--out must differ from --checkpoint (the training checkpoint is kept)")
    check_output_path(args.out, "--out")
    from mtl_perception_training.release import make_release  # torch: not for --help

    info = make_release(args.checkpoint, args.out, args.weights)
    size_mb = args.out.stat().st_size / 1e6
    print(f"wrote {args.out} ({size_mb:.1f} MB, {args.weights} weights, step {info['step']})")
    return 0


COMMAND = Command(
    help="package a trained checkpoint for shipping (weights only, int8 or fp16)",
    add_arguments=_add_arguments,
    run=_run,
    description=DESCRIPTION,
)
