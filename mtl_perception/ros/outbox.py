"""The hand-over from the node's inference thread to its publishing thread.

Post-processing a round (grouping, depth, colours, the host copy) and encoding and publishing
its outputs (numpy -> message fields, serialisation, DDS) is CPU work that does not need the
network, so it runs on its own thread while the inference thread already runs the next round
through the network: the node's frame rate is then set by the slower of the two stages, not by
their sum (``bench node`` reports the frame rate against the forward alone). One slot, with
back-pressure: a round is never dropped once through the network (dropping happens before the
work, in ``LatestFrames``, where it is counted); the inference thread waits while the previous
round is still waiting to be finished, so a frame's latency stays bounded by one run of each
stage plus one wait.
"""
from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class Outbox(Generic[T]):
    """One batch in flight between a producer and a consumer thread; ``close`` ends both."""

    def __init__(self) -> None:
        self._item: T | None = None
        self._changed = threading.Condition()
        self._closed = False

    def put(self, item: T) -> bool:
        """Hand ``item`` over, waiting while the slot is full; False (item discarded) once closed."""
        with self._changed:
            self._changed.wait_for(lambda: self._closed or self._item is None)
            if self._closed:
                return False
            self._item = item
            self._changed.notify_all()
            return True

    def take(self) -> T | None:
        """The next item, waiting for one; None once closed (a pending item is discarded: the
        node is stopping and its publishers are about to go)."""
        with self._changed:
            self._changed.wait_for(lambda: self._closed or self._item is not None)
            if self._closed:
                return None
            item, self._item = self._item, None
            self._changed.notify_all()
            return item

    def close(self) -> None:
        """Wake both sides for good: every later ``put`` and ``take`` returns at once."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
