"""What the node tells ``/diagnostics`` once a second: rates, latency, drops, model, errors.

``FrameStats`` is written from three threads (the subscription callback counts arrivals and
drops, the inference thread errors and skipped frames, the publishing thread results) and read
by the 1 Hz timer, so every method takes one lock. Every frame received ends up in exactly one
book once it has left the node: processed, rejected, dropped (superseded before inference took
it) or skipped (nobody subscribed to an output it could make). Rates and percentiles cover a
sliding window: long enough for a stable p95 at 10 Hz, short enough that a change shows within
seconds.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from mtl_perception.ros.faults import Fault

WINDOW_S = 5.0
#: Why images get lost between a camera driver and the node, and what to do (README, "Give the
#: camera driver the same profile"): best-effort 1024x2048 rgb8 from a driver with Fast DDS's
#: default 512 KiB segment: 264 of 264 lost; 512x1024: 271 of 279; none with the profile.
LOST_HINT = (
    "a camera driver on this host that sends images over 512 KiB needs the node's Fast DDS profile "
    '(start it after: eval "$(mtl-perception fastdds-profile)"); over a network, best-effort images '
    "this large need reliable QoS or a faster link"
)
#: No image for this long after images flowed: the camera (or its remapping) is gone.
STALE_INPUT_S = 3.0


@dataclass(frozen=True)
class Snapshot:
    """One diagnostics report's worth of numbers."""

    input_rate_hz: float
    output_rate_hz: float
    receive_to_publish_ms: tuple[float, float]  # p50, p95
    stamp_to_publish_ms: tuple[float, float]  # p50, p95
    pipeline_ms: tuple[float, float]  # p50, p95 of the pipeline call alone
    received: int
    processed: int
    dropped: int
    rejected: int
    errors_since_last: int
    last_error: str
    last_error_age_s: float | None
    input_age_s: float | None
    warnings_since_last: int = 0
    last_warning: str = ""
    faults: tuple[tuple[str, int], ...] = ()  # (kind, count since start) of every Fault
    failure: str = ""  # the node can no longer process frames (the worker stopped)
    skipped: int = 0
    idle: bool = False  # frames skipped in the window and none published: nobody listens
    transport_ms: tuple[float, float] = (float("nan"), float("nan"))  # p50, p95 writer's write -> node's callback
    lost: int = 0  # images the middleware reported lost on the way, since start
    lost_in_window: int = 0


class FrameStats:
    """Thread-safe counters and latency samples of the frames the node sees."""

    def __init__(self, window_s: float = WINDOW_S, clock: Callable[[], float] = time.monotonic) -> None:
        self._window = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._arrivals: deque[float] = deque()
        self._transports: deque[tuple[float, float]] = deque()  # (t, writer's write -> callback s)
        self._losses: deque[tuple[float, int]] = deque()  # (t, images lost on the way)
        self._lost = 0
        self._outputs: deque[tuple[float, ...]] = deque()  # (t, receive->publish, stamp->publish, pipeline) s
        self._received = self._processed = self._dropped = self._rejected = self._skipped = 0
        self._last_skip_t: float | None = None
        self._errors_since_last = self._warnings_since_last = 0
        self._last_error = self._last_warning = self._failure = ""
        self._last_error_t: float | None = None
        self._faults = {fault: 0 for fault in Fault}

    def _trim(self, now: float) -> None:
        while self._arrivals and self._arrivals[0] < now - self._window:
            self._arrivals.popleft()
        while self._transports and self._transports[0][0] < now - self._window:
            self._transports.popleft()
        while self._losses and self._losses[0][0] < now - self._window:
            self._losses.popleft()
        while self._outputs and self._outputs[0][0] < now - self._window:
            self._outputs.popleft()

    def received(self, replaced_unprocessed: bool, transport_s: float | None = None) -> None:
        """A frame arrived; ``replaced_unprocessed``: it displaced one the worker never took;
        ``transport_s``: from its writer's write to the node's callback (None: unknown)."""
        with self._lock:
            now = self._clock()
            self._received += 1
            self._dropped += int(replaced_unprocessed)
            self._arrivals.append(now)
            if transport_s is not None:
                self._transports.append((now, transport_s))
            self._trim(now)

    def lost(self, count: int) -> None:
        """The middleware found ``count`` more images lost between their writer and the node."""
        with self._lock:
            now = self._clock()
            self._lost += count
            self._losses.append((now, count))
            self._trim(now)

    def published(self, receive_to_publish_s: float, stamp_to_publish_s: float, pipeline_s: float) -> None:
        """The outputs of one frame went out; ``pipeline_s`` of that was the pipeline call."""
        with self._lock:
            now = self._clock()
            self._processed += 1
            self._outputs.append((now, receive_to_publish_s, stamp_to_publish_s, pipeline_s))
            self._trim(now)

    def skipped(self) -> None:
        """A frame taken and left alone: none of its outputs has a subscriber it can serve."""
        with self._lock:
            self._skipped += 1
            self._last_skip_t = self._clock()

    def fault(self, fault: Fault, message: str) -> None:
        """A fault of kind ``fault``: a rejected frame (an error) or a frame let through with less."""
        with self._lock:
            self._faults[fault] += 1
            if fault.drops_frame:
                self._rejected += 1
                self._errors_since_last += 1
                self._last_error = message
                self._last_error_t = self._clock()
            else:
                self._warnings_since_last += 1
                self._last_warning = message

    def failed(self, message: str) -> None:
        """The node can no longer process frames; every later report is an ERROR saying why."""
        with self._lock:
            self._failure = message

    def snapshot(self) -> Snapshot:
        """Numbers over the last window; resets the count of errors since the last snapshot."""
        with self._lock:
            now = self._clock()
            self._trim(now)
            latencies = np.array([o[1:] for o in self._outputs], dtype=np.float64).reshape(-1, 3) * 1e3
            if latencies.size:
                p = np.percentile(latencies, [50, 95], axis=0)
                receive, stamp, pipeline = ((float(p[0, i]), float(p[1, i])) for i in range(3))
            else:
                receive = stamp = pipeline = (float("nan"), float("nan"))
            transports = [t for _, t in self._transports]
            transport = (
                tuple(float(v) for v in np.percentile(np.array(transports) * 1e3, [50, 95]))
                if transports else (float("nan"), float("nan"))
            )
            snap = Snapshot(
                input_rate_hz=_rate(self._arrivals, now, self._window),
                output_rate_hz=_rate([o[0] for o in self._outputs], now, self._window),
                receive_to_publish_ms=receive,
                stamp_to_publish_ms=stamp,
                pipeline_ms=pipeline,
                transport_ms=transport,
                lost=self._lost,
                lost_in_window=sum(n for _, n in self._losses),
                received=self._received,
                processed=self._processed,
                dropped=self._dropped,
                rejected=self._rejected,
                errors_since_last=self._errors_since_last,
                last_error=self._last_error,
                last_error_age_s=None if self._last_error_t is None else now - self._last_error_t,
                input_age_s=(now - self._arrivals[-1]) if self._arrivals else None,
                warnings_since_last=self._warnings_since_last,
                last_warning=self._last_warning,
                faults=tuple((fault.value, n) for fault, n in self._faults.items()),
                failure=self._failure,
                skipped=self._skipped,
                idle=not self._outputs and self._last_skip_t is not None and now - self._last_skip_t < self._window,
            )
            self._errors_since_last = self._warnings_since_last = 0
            return snap


def _rate(times, now: float, window: float) -> float:
    """Events per second over the window (0 when fewer than two events)."""
    times = list(times)
    if len(times) < 2:
        return 0.0
    span = max(now - times[0], times[-1] - times[0])
    return (len(times) - 1) / span if span > 0 else 0.0


def _level_and_message(snap: Snapshot, image_topic: str, loading: str) -> tuple[bytes, str]:
    if snap.failure:
        return DiagnosticStatus.ERROR, snap.failure
    if loading:
        return DiagnosticStatus.WARN, loading
    if snap.errors_since_last:
        return DiagnosticStatus.ERROR, f"{snap.errors_since_last} frame(s) rejected: {snap.last_error}"
    if snap.lost_in_window:
        return DiagnosticStatus.WARN, (
            f"{snap.lost_in_window} image(s) on {image_topic} lost on the way in the last {WINDOW_S:.0f} s, "
            f"{snap.received} received since start: {LOST_HINT}"
        )
    if snap.received == 0:
        return DiagnosticStatus.OK, f"waiting for images on {image_topic}"
    if snap.input_age_s is None or snap.input_age_s > STALE_INPUT_S:
        return DiagnosticStatus.WARN, f"no image on {image_topic} for more than {STALE_INPUT_S:.0f} s"
    if snap.warnings_since_last:
        return DiagnosticStatus.WARN, f"{snap.warnings_since_last} warning(s): {snap.last_warning}"
    if snap.idle:
        return DiagnosticStatus.OK, f"{snap.input_rate_hz:.1f} Hz in, nothing computed: no output has a subscriber"
    return DiagnosticStatus.OK, f"{snap.output_rate_hz:.1f} Hz out of {snap.input_rate_hz:.1f} Hz in"


def to_diagnostics(
    snap: Snapshot, stamp: Time, name: str, image_topic: str, info: dict[str, str], loading: str = "",
    reports_lost: bool = True,
) -> DiagnosticArray:
    """One DiagnosticArray with one status; ``info`` adds fixed facts (backend, device, model);
    ``loading``: the model is still loading (WARN with that message: no output yet);
    ``reports_lost``: the middleware tells the node about images lost on the way."""
    level, message = _level_and_message(snap, image_topic, loading)
    values = {
        "input_rate_hz": f"{snap.input_rate_hz:.2f}",
        "output_rate_hz": f"{snap.output_rate_hz:.2f}",
        "latency_receive_to_publish_p50_ms": f"{snap.receive_to_publish_ms[0]:.1f}",
        "latency_receive_to_publish_p95_ms": f"{snap.receive_to_publish_ms[1]:.1f}",
        "latency_stamp_to_publish_p50_ms": f"{snap.stamp_to_publish_ms[0]:.1f}",
        "latency_stamp_to_publish_p95_ms": f"{snap.stamp_to_publish_ms[1]:.1f}",
        "latency_transport_p50_ms": f"{snap.transport_ms[0]:.1f}",
        "latency_transport_p95_ms": f"{snap.transport_ms[1]:.1f}",
        "pipeline_p50_ms": f"{snap.pipeline_ms[0]:.1f}",
        "pipeline_p95_ms": f"{snap.pipeline_ms[1]:.1f}",
        "frames_received": str(snap.received),
        "frames_processed": str(snap.processed),
        "frames_dropped": str(snap.dropped),
        "frames_rejected": str(snap.rejected),
        "frames_skipped": str(snap.skipped),
        "frames_lost_in_transport": str(snap.lost) if reports_lost else "not reported by this middleware",
        "window_s": f"{WINDOW_S:.0f}",
        **info,
        "last_error": snap.last_error,
        "last_error_age_s": "" if snap.last_error_age_s is None else f"{snap.last_error_age_s:.1f}",
        "last_warning": snap.last_warning,
        **{f"faults_{kind}": str(n) for kind, n in snap.faults},
    }
    status = DiagnosticStatus(
        level=level,
        name=name,
        message=message,
        hardware_id=info.get("device", ""),
        values=[KeyValue(key=k, value=v) for k, v in values.items()],
    )
    array = DiagnosticArray()
    array.header.stamp = stamp
    array.status = [status]
    return array
