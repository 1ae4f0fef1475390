"""``mtl-perception node [--ros-args ...]``: the perception node for pip installs without ``ros2 run``.

Same node, parameters and exit codes as ``perception_node``; everything after ``--ros-args``
goes to rclpy unchanged (``--params-file``, ``-p name:=value``, ``-r image:=/camera/image``).
"""
from __future__ import annotations

import argparse

from mtl_perception.command import Command


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ros-args",
        dest="ros_args",
        nargs=argparse.REMAINDER,
        default=None,
        help="ROS arguments, e.g. --ros-args --params-file config/perception.yaml -r image:=/camera/image",
    )


def _run(args: argparse.Namespace) -> int:
    from mtl_perception.ros.node import main

    argv = ["mtl-perception-node"]
    if args.ros_args is not None:
        argv += ["--ros-args", *args.ros_args]
    return main(argv)


COMMAND = Command(
    help="run the ROS 2 perception node (same as `ros2 run mtl_perception perception_node`)",
    add_arguments=_add_arguments,
    run=_run,
    description=__doc__.splitlines()[0],
)
