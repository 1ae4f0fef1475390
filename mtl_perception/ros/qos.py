"""QoS profiles of the node's subscriptions and publishers, built from its parameters.

Measured with ``mtl-perception bench node --qos`` (512x1024 rgb8 at 30 Hz between two
processes over Fast DDS; figures in docs/measurements.md): with Fast DDS as shipped (512 KiB
shared-memory segment) a best-effort reader lost most frames whatever the writer, reliable
readers lost almost none; with the 32 MiB segment the node configures for itself
(``middleware.py``) every pairing received every frame, at a lower latency.
The camera's writer is configured by its driver, not by this package, so the defaults must
hold with Fast DDS as shipped: reliable, keep last 5. The node's callback only stores the
newest frame, so a reader queue of 5 adds no latency; it lets the node see (and count) the
frames it drops instead of DDS discarding them unseen.

A reliable reader cannot match a best-effort writer (most camera drivers publish with the
sensor-data profile), so the image reliability defaults to ``auto``: like ``ros2 topic
echo``, the node follows the writers it finds on the topic, reliable when all of them are.
"""
from __future__ import annotations

from typing import Iterable

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

RELIABILITY = ("reliable", "best_effort")
IMAGE_RELIABILITY = ("auto",) + RELIABILITY

_POLICY = {"reliable": ReliabilityPolicy.RELIABLE, "best_effort": ReliabilityPolicy.BEST_EFFORT}


def profile(reliability: str, depth: int) -> QoSProfile:
    """Keep-last ``depth``, volatile, with the named reliability ("reliable" | "best_effort")."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=_POLICY[reliability],
        durability=DurabilityPolicy.VOLATILE,
    )


def adapt_reliability(writer_policies: Iterable[ReliabilityPolicy], current: str) -> str:
    """Reliability a reader should use to match every writer: reliable only if all are reliable.

    With no writer (yet) it keeps ``current``: there is nothing to match.
    """
    policies = list(writer_policies)
    if not policies:
        return current
    return "reliable" if all(p == ReliabilityPolicy.RELIABLE for p in policies) else "best_effort"


#: camera_info is small and arrives with every frame; best effort matches any writer and a
#: lost one is replaced by the next.
CAMERA_INFO = profile("best_effort", 1)
#: /diagnostics follows diagnostic_updater: reliable, a short history.
DIAGNOSTICS = profile("reliable", 10)
