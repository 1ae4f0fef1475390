"""The ``mtl-perception`` command: one entry point, one sub-command per job.

Sub-commands are discovered through the ``mtl_perception.commands`` entry-point group; their
modules import heavy libraries (torch, rclpy) inside ``run`` so ``--help`` stays fast. A ``UserError`` becomes one line on stderr and exit 2.
"""
from __future__ import annotations

import argparse
import sys
from importlib.metadata import entry_points
from typing import Sequence

from mtl_perception.errors import UserError

PROG = "mtl-perception"


def _command_entry_points() -> dict:
    return {ep.name: ep for ep in entry_points(group="mtl_perception.commands")}


def build_parser() -> argparse.ArgumentParser:
    """The whole command line, every sub-command included (the README's commands are tested against it)."""
    commands = _command_entry_points()
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Multi-task camera perception: semantic, instance and depth in one pass.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in sorted(commands):
        command = commands[name].load()
        p = sub.add_parser(name, help=command.help, description=command.description or command.help)
        command.add_arguments(p)
        p.set_defaults(_run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except UserError as exc:
        print(f"{PROG} {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
