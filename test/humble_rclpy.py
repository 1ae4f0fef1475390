"""Run the perception node on a Humble-like rclpy: the methods Humble's rclpy 3.x lacks removed.

Humble is not on PyPI, so the tests run the real node through this wrapper on the installed
rclpy (Jazzy or Kilted) after deleting what Humble does not have and the node could call:
the pre/post set-parameters callbacks (they came with Iron). Everything else the node uses is
in Humble's rclpy too (see ``mtl_perception/ros/compat.py``). Arguments are the node's own.
"""
import sys

from rclpy.node import Node

HUMBLE_LACKS = (
    "add_pre_set_parameters_callback",
    "remove_pre_set_parameters_callback",
    "add_post_set_parameters_callback",
    "remove_post_set_parameters_callback",
)

for name in HUMBLE_LACKS:
    delattr(Node, name)

from mtl_perception.ros.node import main  # noqa: E402 - after the removal, as on Humble

sys.exit(main(sys.argv))
