"""Every kind of fault a frame, a camera_info or a model can cause, and how the node reports it.

A fault has a stable kind (``Fault``) and a severity: errors drop the frame, warnings let it
through with less (the training camera instead of a refused camera_info, fewer outputs).
``FaultReporter`` counts each kind (``/diagnostics`` shows the counts) and logs at most one
line per kind per period, whatever the message text says (byte counts, sizes and formats
vary from frame to frame; the kind does not).

rclpy remembers the severity of each log call site and raises ``ValueError`` when one site
logs at another severity (``RcutilsLogger.log``: "Logger severity cannot be changed between
calls"); that once killed the inference worker inside its own exception handler. Hence one
call site per severity in ``FaultReporter._emit``.
"""
from __future__ import annotations

import threading
import time
from enum import Enum
from typing import Any, Callable, Protocol

#: Seconds between two log lines about the same kind of fault.
LOG_THROTTLE_S = 5.0


class Fault(Enum):
    """Kinds of fault; the value is the key in logs and ``/diagnostics`` (``faults_<value>``)."""

    UNSUPPORTED_ENCODING = "unsupported_encoding"
    EMPTY_IMAGE = "empty_image"
    BAD_STEP = "bad_step"
    BAD_DATA_SIZE = "bad_data_size"
    UNDECODABLE = "undecodable"
    OVERSIZED = "oversized"
    NON_FINITE_OUTPUT = "non_finite_output"
    REFUSED_INPUT = "refused_input"
    INTERNAL = "internal"
    CAMERA_INFO_REFUSED = "camera_info_refused"
    OUTPUTS_UNAVAILABLE = "outputs_unavailable"

    @property
    def drops_frame(self) -> bool:
        """Errors drop the frame; the two warnings let it through with less."""
        return self not in (Fault.CAMERA_INFO_REFUSED, Fault.OUTPUTS_UNAVAILABLE)


class FrameError(Exception):
    """A frame that cannot be processed: its fault kind and a message that says why."""

    def __init__(self, fault: Fault, message: str) -> None:
        super().__init__(message)
        self.fault = fault


class Sink(Protocol):
    """Where reported faults are counted (``diagnostics.FrameStats``)."""

    def fault(self, fault: Fault, message: str) -> None: ...


class FaultReporter:
    """Counts every fault in ``sink`` and logs one line per kind per ``period`` seconds.

    ``logger`` is an rclpy logger (anything with ``error`` and ``warning``). A held-back
    line is counted and the next line of that kind says how many were held.
    """

    def __init__(self, logger: Any, sink: Sink, period: float = LOG_THROTTLE_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._logger, self._sink, self._period, self._clock = logger, sink, period, clock
        self._last: dict[Fault, float] = {}
        self._held: dict[Fault, int] = {}
        self._lock = threading.Lock()

    def __call__(self, fault: Fault, message: str) -> None:
        self._sink.fault(fault, message)
        now = self._clock()
        with self._lock:
            if now - self._last.get(fault, -float("inf")) < self._period:
                self._held[fault] = self._held.get(fault, 0) + 1
                return
            held = self._held.pop(fault, 0)
            self._last[fault] = now
        more = f" ({held} more since the last report)" if held else ""
        self._emit(fault, f"[{fault.value}] {message}{more}")

    def _emit(self, fault: Fault, line: str) -> None:
        # One call site per severity: rclpy refuses two severities from one site.
        if fault.drops_frame:
            self._logger.error(line)
        else:
            self._logger.warning(line)
