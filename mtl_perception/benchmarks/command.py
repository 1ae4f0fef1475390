"""``mtl-perception bench TARGET``: speed measurements written as JSON.

Targets register under the ``mtl_perception.benchmarks`` entry-point group (this package's
modules, ``ros/node_bench.py``, which needs rclpy and so lives with the node, and the offline
package's ``train_bench.py``). Each returns a JSON-serialisable dict; this module adds the
machine facts and writes it, so every benchmark file says where it was measured. Targets are
measurements, never pass/fail tests.
"""
from __future__ import annotations

import argparse
import json
from importlib.metadata import entry_points
from pathlib import Path

from mtl_perception.benchmarks.base import Benchmark, machine_facts
from mtl_perception.command import Command
from mtl_perception.io_utils import atomic_write_text


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


COMMAND = Command(help="measure speed (data, synth, train, grouping, inference, node, cameras)", add_arguments=_add_arguments, run=_run)
