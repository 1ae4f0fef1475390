"""``mtl-perception train``: train the multi-task network from a YAML config.

Runs unchanged under ``torchrun --nproc_per_node N`` (one process per GPU, or several CPU
processes with Gloo). Exit status: 0 when done, 2 for a config/data mistake or a diverged
(NaN) loss, 128 + signal (130 for Ctrl-C, 143 for SIGTERM) after saving ``last.pt``.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from mtl_perception.command import Command


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="training config YAML (e.g. config/train/synthetic.yaml)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set optim.lr=0.01 --set data.batch_size=4 (repeatable)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last.pt exactly (without --config: reuse the checkpoint's config)",
    )
    parser.add_argument("--out", type=Path, help="run folder for checkpoints and logs (default: runs/<config name>)")
    parser.add_argument(
        "--stop-after",
        type=int,
        metavar="STEP",
        help="save last.pt and exit 0 after this global step (for time-limited jobs; continue with --resume)",
    )


def _run(args: argparse.Namespace) -> int:
    from mtl_perception.config import apply_overrides, load_config
    from mtl_perception.errors import ConfigError
    from mtl_perception.io_utils import check_output_path

    from mtl_perception.model.checkpoint import read_checkpoint
    from mtl_perception_training.train_config import resolve_train_config
    from mtl_perception_training.trainer import Trainer, TrainingStopped

    if args.config is None and not args.resume:
        raise ConfigError("--config is required (only --resume may leave it out, to reuse the checkpoint's config)")
    if args.out is None:
        if args.config is None:
            raise ConfigError("--resume without --config needs --out (the run folder holding last.pt)")
        args.out = Path("runs") / args.config.stem
    check_output_path(args.out, "--out", kind="folder")
    if args.stop_after is not None and args.stop_after < 1:
        raise ConfigError(f"--stop-after must be a positive step number, got {args.stop_after}")
    raw = load_config(args.config) if args.config else read_checkpoint(args.out / "last.pt")["config"]
    cfg = resolve_train_config(apply_overrides(raw, args.overrides))
    main_process = int(os.environ.get("RANK", "0")) == 0
    try:
        result = Trainer(cfg, args.out, resume=args.resume, stop_after=args.stop_after).fit()
    except TrainingStopped as stopped:
        if main_process:
            print(f"mtl-perception train: {stopped}", file=sys.stderr)
        return 128 + stopped.signum
    if main_process:
        print(f"trained {result.step} of {cfg['optim']['steps']} steps; checkpoint {args.out / 'last.pt'}")
        if result.best:
            best = result.best
            print(f"best {best['metric']}={best['value']:.4g} at step {best['step']}: {args.out / 'best.pt'}")
    return 0


COMMAND = Command(
    help="train the multi-task network (torchrun-ready)",
    description="Train the multi-task network from a YAML config; runs unchanged under torchrun --nproc_per_node N.",
    add_arguments=_add_arguments,
    run=_run,
)
