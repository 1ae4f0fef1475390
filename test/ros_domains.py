"""One ROS domain id per ROS test, all inside 0-101, so tests never hear each other.

DDS discovery is per domain: two tests (or two test runs on one machine, e.g. two checkouts
or the kilted and Jazzy lanes run side by side) that share a domain id see each other's
nodes and topics. Every test that starts rclpy takes its id from here by name.
``MTL_TEST_DOMAIN_BASE`` shifts the whole table for a second concurrent run on the same
machine (keep base + len(NAMES) <= 102: ids above 101 map onto ports the OS also hands out
as ephemeral ports).
"""
from __future__ import annotations

import os

BASE_ENV = "MTL_TEST_DOMAIN_BASE"
MAX_DOMAIN_ID = 101

NAMES = (
    "node",
    "node_colcon",
    "node_bench",
    "bag_eval_overload",
    "bag_eval_live_vs_offline",
    "bag_eval_node_cannot_start",
    "demo",
    "node_humble",
    "fastdds_profile",
    "node_faults",
    "node_cameras",
)


def domain_id(name: str) -> int:
    """The domain id of the test called ``name`` (one of ``NAMES``)."""
    base = int(os.environ.get(BASE_ENV, "0"))
    value = base + NAMES.index(name)
    if not 0 <= value <= MAX_DOMAIN_ID:
        raise ValueError(f"ROS domain id {value} for {name!r} is outside 0-{MAX_DOMAIN_ID}; lower {BASE_ENV}")
    return value
