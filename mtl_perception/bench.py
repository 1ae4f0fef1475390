"""``mtl-perception bench TARGET``: speed measurements written as JSON.

Targets register under the ``mtl_perception.benchmarks`` entry-point group. Each returns a
JSON-serialisable dict; this module adds the machine facts and writes it, so every benchmark
file says where it was measured. Targets are measurements, never pass/fail tests.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable

from mtl_perception.command import Command
from mtl_perception.io_utils import atomic_write_text


@dataclass(frozen=True)
class Benchmark:
    """One benchmark target: its help line, its arguments and the measurement itself."""

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], dict[str, Any]]


def machine_facts() -> dict[str, Any]:
    """Where a number was measured: CPU, cores, Python, torch and GPU when present."""
    facts: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
    }
    try:
        import torch

        facts["torch"] = torch.__version__
        facts["torch_threads"] = torch.get_num_threads()
        facts["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        pass
    return facts


def parse_sizes(text: str, option: str = "--sizes") -> list[tuple[int, int]]:
    """``"256x512,512x1024"`` -> ``[(256, 512), (512, 1024)]``; a bad item is a ``UserError``."""
    from mtl_perception.errors import UserError

    sizes = []
    for item in text.split(","):
        h, sep, w = item.strip().partition("x")
        if not sep or not h.isdigit() or not w.isdigit() or int(h) < 32 or int(w) < 32:
            raise UserError(f"{option}: expected HxW with H, W >= 32, got {item!r}")
        sizes.append((int(h), int(w)))
    return sizes


#: The network measured when no trained model is at hand: the size class of
#: config/train/synthetic.yaml (the shipped model's), at 256x512 with the Cityscapes camera.
FALLBACK_MODEL = {
    "backbone": "resnet18", "output_stride": 16, "aspp_channels": 128, "decoder_channels": 128, "disparity_bias": 8.0,
}
FALLBACK_SIZE = (256, 512)


def bench_model(model: Path | None, workdir: Path) -> tuple[Path, str]:
    """The model a benchmark measures and how to describe it: ``model`` if given, else the
    shipped default, else a randomly initialised FALLBACK_MODEL saved under ``workdir``
    (speed does not depend on the weights)."""
    import torch

    from mtl_perception.data.synth.camera import CITYSCAPES_BASELINE, CITYSCAPES_FX, CITYSCAPES_WIDTH
    from mtl_perception.inference.factory import default_model_path
    from mtl_perception.model import build_model

    if model is not None:
        return model, str(model)
    if default_model_path().is_file():
        return default_model_path(), f"shipped {default_model_path().name}"
    h, w = FALLBACK_SIZE
    camera = {"fx": CITYSCAPES_FX * w / CITYSCAPES_WIDTH, "baseline": CITYSCAPES_BASELINE}
    config = {"model": FALLBACK_MODEL, "data": {"height": h, "width": w, "camera": camera}}
    torch.manual_seed(0)
    path = workdir / "random.pt"
    torch.save({"config": config, "model": build_model(FALLBACK_MODEL).state_dict()}, path)
    return path, f"random init resnet18/os16 at {h}x{w} (no trained model here)"


def _benchmarks() -> dict:
    return {ep.name: ep for ep in entry_points(group="mtl_perception.benchmarks")}


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="target", metavar="TARGET")
    sub.required = True
    for name, ep in sorted(_benchmarks().items()):
        bench: Benchmark = ep.load()
        p = sub.add_parser(name, help=bench.help, description=bench.help)
        p.add_argument("--json", type=Path, default=None, help="write the results here (default: bench/<target>.json)")
        p.add_argument(
            "--default-allocator", action="store_true",
            help="leave glibc's malloc as it is (default: keep freed memory, as the node does; see mtl_perception.memory)",
        )
        bench.add_arguments(p)
        p.set_defaults(_bench=bench)


def _run(args: argparse.Namespace) -> int:
    from mtl_perception.memory import retain_freed_memory

    retained = not args.default_allocator and retain_freed_memory()
    machine = {**machine_facts(), "freed_memory_retained": retained}
    results = {"target": args.target, "machine": machine, **args._bench.run(args)}
    out = args.json or Path("bench") / f"{args.target}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print(f"wrote {out}")
    return 0


COMMAND = Command(help="measure speed (data, synth, train, grouping, inference, node)", add_arguments=_add_arguments, run=_run)
