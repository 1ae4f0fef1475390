"""Latest frame wins, per camera: the hand-over between subscription callbacks and the worker.

Each camera has one slot. A callback puts its newest message there (an older one nobody took
is replaced and counted as dropped); the worker takes the newest frame of *every* camera that
has one, in one go, and runs them as one batch. That makes the schedule fair without a
policy: a fast camera cannot starve a slow one, because every round serves every camera that
has a frame, and a camera that stops sending simply has no frame in the next rounds while
the others go on. Latency stays bounded (one round of inference, one of publishing, one wait
for the slot between them, see ``outbox``) however fast the cameras are.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterable


@dataclass
class Frame:
    """A message as received, and when (monotonic seconds)."""

    msg: Any
    received: float = field(default_factory=time.monotonic)


class LatestFrames:
    """One slot per camera name; ``put`` from callbacks, ``take`` from the worker."""

    def __init__(self, cameras: Iterable[str]) -> None:
        self._slots: dict[str, Frame | None] = {name: None for name in cameras}
        if not self._slots:
            raise ValueError("LatestFrames needs at least one camera")
        self._ready = threading.Condition()
        self._closed = False

    def put(self, camera: str, msg: Any) -> bool:
        """Store ``msg`` as ``camera``'s newest frame; True if it replaced one the worker never took."""
        with self._ready:
            replaced = self._slots[camera] is not None
            self._slots[camera] = Frame(msg)
            self._ready.notify()
        return replaced

    def take(self, timeout: float | None = None) -> dict[str, Frame]:
        """The newest frame of every camera that has one (waiting for the first); empty when
        closed or after ``timeout`` seconds without any frame."""
        with self._ready:
            self._ready.wait_for(lambda: self._closed or any(f is not None for f in self._slots.values()), timeout)
            if self._closed:
                return {}
            taken = {name: f for name, f in self._slots.items() if f is not None}
            for name in taken:
                self._slots[name] = None
            return taken

    def close(self) -> None:
        """Wake the worker for good: every later ``take`` returns at once, empty."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()
