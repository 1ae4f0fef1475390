"""``mtl-perception demo``: the whole product in one command, on the embedded defaults.

It drives a car through a synthetic street (``synth``), records the camera as a rosbag2
(``bag make``), replays it at a fixed camera rate over real ROS 2 topics into the perception
node running the shipped default model, records every output topic into an MCAP bag, and
scores the outputs against the scenes' ground truth (``bag eval --live``). Then it writes
mosaics (input | semantic | instances | depth) from the recorded output bag, so the pictures
show exactly what a subscriber received. Each step is the same code a user runs by hand.
"""
from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from mtl_perception.command import Command
from mtl_perception.errors import UserError

_MARKER = ".mtl_perception_demo"
_PARTS = ("scenes", "camera_bag", "outputs", "report", "mosaics")
_MOSAIC_TOPICS = ("semantic/color", "instance/color", "depth/color")


def _prepare_out(out: Path) -> None:
    """Reuse a folder the demo made before (its parts are replaced); refuse any other non-empty one."""
    if out.exists() and any(out.iterdir()) and not (out / _MARKER).exists():
        raise UserError(f"--out {out} exists and was not made by the demo; choose an empty or new folder")
    for part in _PARTS:
        shutil.rmtree(out / part, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / _MARKER).touch()


def read_mosaic_frames(output_bag: Path, namespace: str, count: int) -> list[list[np.ndarray]]:
    """Rows of (input | semantic | instances | depth) RGB images for ``count`` frames spread over the bag."""
    from rosbags.highlevel import AnyReader

    from mtl_perception.bag.messages import decode_image, to_rgb

    wanted = {f"{namespace}/{t}": t for t in _MOSAIC_TOPICS}
    frames: dict[int, dict[str, np.ndarray]] = {}
    with AnyReader([output_bag]) as reader:
        for conn, _, raw in reader.messages(connections=reader.connections):
            if conn.msgtype != "sensor_msgs/msg/Image":
                continue
            msg = reader.deserialize(raw, conn.msgtype)
            stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            if conn.topic in wanted:
                frames.setdefault(stamp, {})[wanted[conn.topic]] = decode_image(msg)
            elif msg.encoding in ("rgb8", "bgr8", "rgba8", "bgra8", "mono8") and not conn.topic.startswith(namespace + "/"):
                frames.setdefault(stamp, {})["input"] = to_rgb(decode_image(msg), msg.encoding)
    complete = [frames[s] for s in sorted(frames) if len(frames[s]) == len(_MOSAIC_TOPICS) + 1]
    if not complete:
        return []
    picks = np.unique(np.linspace(0, len(complete) - 1, min(count, len(complete))).round().astype(int))
    return [[complete[i]["input"], *(complete[i][t] for t in _MOSAIC_TOPICS)] for i in picks]


def run_demo(out: Path, model: Path, frames: int, rate: float, height: int, width: int, seed: int) -> dict[str, Any]:
    """Run every step; return the live evaluation report (speed, drops, accuracy)."""
    from mtl_perception.bag.live_eval import evaluate_live
    from mtl_perception.bag.make import make_bag
    from mtl_perception.bag.report import write_report
    from mtl_perception.bag.topics import OUTPUT_NAMESPACE
    from mtl_perception.data.synth import generate_sequence
    from mtl_perception.postprocess.mosaic import tile, write_png

    _prepare_out(out)
    t0 = time.monotonic()
    print(f"[1/4] rendering a {frames}-frame synthetic drive at {width}x{height}", flush=True)
    generate_sequence(out / "scenes", frames=frames, train=0, val=1, height=height, width=width, seed=seed)
    print(f"[2/4] recording it as a camera bag at {rate:g} Hz", flush=True)
    make_bag(out / "scenes", out / "camera_bag", split="val", rate=rate)
    print("[3/4] replaying it into the perception node over ROS 2 topics, recording every output", flush=True)
    report, examples = evaluate_live(out / "camera_bag", model, out_bag=out / "outputs")
    summary = write_report(out / "report", report, examples)
    print("[4/4] writing mosaics (input | semantic | instances | depth) from the output bag", flush=True)
    rows = read_mosaic_frames(out / "outputs", OUTPUT_NAMESPACE, count=4)
    if rows:
        write_png(out / "mosaics" / "mosaic.png", tile(rows))
        for i, row in enumerate(rows):
            write_png(out / "mosaics" / f"frame_{i}.png", tile([row]))
    report["demo"] = {"wall_s": round(time.monotonic() - t0, 1), "mosaics": len(rows), "summary": str(summary)}
    return report


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (default: demo_out)")
    parser.add_argument("--model", type=Path, help="checkpoint (default: the shipped default model)")
    parser.add_argument("--frames", type=int, default=40, help="frames of the synthetic drive (default: 40)")
    parser.add_argument("--rate", type=float, default=5.0, help="camera rate in Hz (default: 5)")
    parser.add_argument("--height", type=int, default=256, help="camera image height (default: 256)")
    parser.add_argument("--width", type=int, default=512, help="camera image width (default: 512)")
    parser.add_argument("--seed", type=int, default=0, help="scene seed (default: 0)")


def _run(args: argparse.Namespace) -> int:
    from mtl_perception.bag.report import markdown_summary
    from mtl_perception.inference.factory import default_model_path

    if args.frames < 2:
        raise UserError(f"--frames must be at least 2, got {args.frames}")
    if not args.rate > 0:
        raise UserError(f"--rate must be positive, got {args.rate}")
    if args.height < 32 or args.width < 32:
        raise UserError(f"--height and --width must be at least 32, got {args.height} x {args.width}")
    model = args.model or default_model_path()
    if not model.is_file():
        raise UserError(f"model not found: {model} (pass --model PATH)")
    report = run_demo(args.out, model, args.frames, args.rate, args.height, args.width, args.seed)
    print()
    print(markdown_summary(report))
    demo = report["demo"]
    print(f"demo finished in {demo['wall_s']} s; outputs in {args.out}/ (outputs/ is an MCAP bag for RViz or Foxglove,")
    print(f"report/ has plots, mosaics/mosaic.png shows {demo['mosaics']} frames)")
    return 0


COMMAND = Command(
    help="run the whole product on a synthetic drive: node, bags, mosaics, accuracy",
    add_arguments=_add_arguments,
    run=_run,
    description=__doc__,
)
