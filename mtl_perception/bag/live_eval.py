"""Live bag evaluation: the bag replayed at its recorded timing through the running ROS node.

What a vehicle sees is not what ``offline_eval`` measures: frames cross DDS twice, the node
decodes and encodes them, and when the camera is faster than the model the node must drop
stale frames (latest frame wins) rather than queue them. Here the node runs as it would on
the car, as a subprocess (``python -m mtl_perception.ros.node``) in a namespace of its own,
and this process plays the role of the camera and of the consumers:

1. warm-up: the first frame is sent again and again under a warm-up stamp until outputs
   flow, so discovery and model loading are not counted as latency; the output topics that
   answer it are the ones every frame is then expected to produce;
2. replay: each image (with its camera info) is published at ``t0 + (log_time - first) / F``,
   the exact bytes that were recorded (a ``bgr8`` bag stays ``bgr8``);
3. drain: outputs are collected until every frame is answered or none came for a while.

Latency is publish -> arrival of the frame's last expected output, in this process (DDS both
ways, decoding, inference, encoding: what a downstream node sees). A frame with no output at
all is dropped. Outputs are matched to frames by header stamp, which the node copies.

The rclpy side (camera publishers, output subscribers) is ``mtl_perception.ros.replay_client``,
imported only when a live evaluation runs, so the rest of ``mtl_perception.bag`` works without
ROS and nothing outside ``mtl_perception/ros`` imports rclpy.
"""
from __future__ import annotations

import os
import queue
import sys
import threading
import time
from pathlib import Path
from typing import Any

from mtl_perception.bag import messages
from mtl_perception.bag.output_bag import OutputBag
from mtl_perception.bag.reader import BagFrame, BagInput
from mtl_perception.bag.report import latency_percentiles, reading_notes
from mtl_perception.bag.scoring import BagScorer, instances_from_map, scores_from_markers
from mtl_perception.bag import topics as layout
from mtl_perception.errors import UserError
from mtl_perception.inference.output_topics import OUTPUT_TOPICS
from mtl_perception.process import ChildProcess

#: Outputs the scoring reads; subscribed even without an output bag (the markers for the
#: instance scores in their captions).
_SCORED = ("semantic/labels", "instance/labels", "instance/markers", "depth/disparity")
#: Frames read ahead of the replay clock (as ``ros2 bag play``'s read-ahead queue).
_READ_AHEAD = 32
_WARMUP_PERIOD_S = 0.5


def _start_node(model: Path, namespace: str, params: list[str]) -> ChildProcess:
    """The perception node as a subprocess, scored at the camera's resolution (as offline)."""
    cmd = [sys.executable, "-m", "mtl_perception.ros.node", "--ros-args", "-r", f"__ns:={namespace}"]
    cmd += ["-p", f"model_path:={model}", "-p", "output_resolution:=input"]
    for param in params:
        if ":=" not in param:
            raise UserError(f"--node-arg must look like NAME:=VALUE, got {param!r}")
        cmd += ["-p", param]
    return ChildProcess(cmd)


def _restamp(raw: bytes, msgtype: str, stamp: int) -> bytes:
    msg = messages.TYPESTORE.deserialize_cdr(raw, msgtype)
    msg.header = messages.make_header(stamp, msg.header.frame_id)
    return bytes(messages.TYPESTORE.serialize_cdr(msg, msgtype))


class _OutputCollector:
    """Outputs per stamp (called from the executor thread); scoring and bag writing happen in ``drain``."""

    def __init__(self) -> None:
        self.inbox: queue.SimpleQueue[tuple[str, float, bytes]] = queue.SimpleQueue()
        self.last_arrival = 0.0

    def __call__(self, relative: str, arrival: float, raw: bytes) -> None:
        self.inbox.put((relative, arrival, raw))
        self.last_arrival = arrival


def _stamp_of(relative: str, raw: bytes) -> int:
    """The header stamp of a raw output message, read without decoding its payload twice."""
    msg = messages.TYPESTORE.deserialize_cdr(raw, OUTPUT_TOPICS[relative].msgtype)
    header = msg.markers[0].header if relative == "instance/markers" and msg.markers else getattr(msg, "header", None)
    return messages.stamp_ns(header) if header is not None else -1


def evaluate_live(
    bag: str | Path,
    model: str | Path,
    image_topic: str = "/camera/image",
    gt_prefix: str | None = "/gt",
    camera_info_topic: str | None = None,
    out_bag: str | Path | None = None,
    namespace: str = layout.OUTPUT_NAMESPACE,
    rate_factor: float = 1.0,
    node_params: list[str] | None = None,
    limit: int | None = None,
    startup_timeout_s: float = 180.0,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Replay ``bag`` through the node; return the report dict and error-map examples."""
    run_ns = f"/mtl_bag_eval_{os.getpid()}"
    scorer = BagScorer()
    with BagInput(bag) as source:
        source.require_image_topic(image_topic)
        gt_topics = source.ground_truth_topics(gt_prefix) if gt_prefix else {}
        frames = source.frames(image_topic, gt_prefix, camera_info_topic)
        first = next(frames, None)
        if first is None:
            raise UserError(f"{bag}: no usable image on {image_topic}")
        outputs = list(OUTPUT_TOPICS) if out_bag else list(_SCORED)
        writer = OutputBag(out_bag, namespace) if out_bag else None
        collector = _OutputCollector()
        node = _start_node(Path(model), run_ns, node_params or [])
        ros = None
        try:
            from mtl_perception.ros.replay_client import ReplayClient

            ros = ReplayClient(run_ns, {name: OUTPUT_TOPICS[name].msgtype for name in outputs}, collector)
            expected = _warm_up(ros, node, collector, first, startup_timeout_s)
            info_topic = camera_info_topic or layout.camera_info_topic(image_topic)
            run = _Replay(ros, collector, writer, scorer, expected, image_topic, info_topic, node_params or [])
            run.replay(first, frames, rate_factor, limit)
            run.drain(node)
        finally:
            if ros is not None:
                ros.close()
            node.stop()
            if writer is not None:
                writer.close()
        stats = source.stats
    return run.report(bag, model, image_topic, gt_topics, out_bag, rate_factor, stats, outputs), scorer.examples()


def _warm_up(ros: Any, node: ChildProcess, collector: _OutputCollector, frame: BagFrame, timeout_s: float) -> list[str]:
    """Send the first image under warm-up stamps until outputs flow; return the topics that answered."""
    info = _info_raw(frame)
    deadline = time.monotonic() + timeout_s
    answered: dict[str, float] = {}
    k = 0
    while time.monotonic() < deadline:
        node.check_alive("the perception node")
        k += 1
        ros.publish(_restamp(frame.raw, messages.IMAGE, k), info and _restamp(info, messages.CAMERA_INFO, k))
        until = time.monotonic() + _WARMUP_PERIOD_S
        while time.monotonic() < until:
            try:
                relative, arrival, raw = collector.inbox.get(timeout=0.05)
            except queue.Empty:
                continue
            if 0 < _stamp_of(relative, raw) <= k:
                answered.setdefault(relative, arrival)
        if answered and time.perf_counter() - max(answered.values()) > _WARMUP_PERIOD_S:
            break
    if not answered:
        node.check_alive("the perception node")
        raise UserError(f"the perception node published no output within {timeout_s:.0f} s; its last output:\n{node.output()}")
    time.sleep(_WARMUP_PERIOD_S)  # let the last warm-up outputs land, then forget them
    while True:
        try:
            collector.inbox.get_nowait()
        except queue.Empty:
            break
    return sorted(answered)


def _info_raw(frame: BagFrame) -> bytes | None:
    if frame.camera_info is None:
        return None
    return bytes(messages.TYPESTORE.serialize_cdr(frame.camera_info, messages.CAMERA_INFO))


class _Replay:
    """Publishing on the recorded clock, then matching outputs to frames."""

    def __init__(self, ros: Any, collector: _OutputCollector, writer: OutputBag | None, scorer: BagScorer,
                 expected: list[str], image_topic: str, info_topic: str, node_params: list[str]) -> None:
        self.ros, self.collector, self.writer, self.scorer = ros, collector, writer, scorer
        self.expected = expected
        self.image_topic, self.info_topic = image_topic, info_topic
        self.node_params = node_params
        self.frames: dict[int, dict[str, Any]] = {}  # stamp -> publish record (frame kept until scored)
        self.order: list[int] = []
        self._unreleased = 0  # frames before this position in ``order`` were answered or given up
        self.restamped = 0
        self.published_first = 0.0

    def replay(self, first: BagFrame, frames: Any, rate_factor: float, limit: int | None) -> None:
        ahead: queue.Queue[BagFrame | None] = queue.Queue(maxsize=_READ_AHEAD)

        def read() -> None:
            try:
                for i, frame in enumerate(frames, start=1):
                    if limit is not None and i >= limit:
                        break
                    ahead.put(frame)
            finally:
                ahead.put(None)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        start = time.perf_counter()
        self.published_first = start
        frame: BagFrame | None = first
        while frame is not None:
            due = start + (frame.log_time - first.log_time) / 1e9 / rate_factor
            while (wait := due - time.perf_counter()) > 0:
                time.sleep(min(wait, 0.002) if wait < 0.01 else wait - 0.005)
                self._process(block=False)
            raw, info = frame.raw, _info_raw(frame)
            if frame.stamp in self.frames:  # outputs are matched by stamp: make a repeated one unique
                self.restamped += 1
                frame.stamp = frame.log_time
                while frame.stamp in self.frames:
                    frame.stamp += 1
                raw = _restamp(raw, messages.IMAGE, frame.stamp)
                info = info and _restamp(info, messages.CAMERA_INFO, frame.stamp)
            record = {"frame": frame, "outputs": {}, "arrival": {}, "position": len(self.order)}
            self.frames[frame.stamp] = record
            self.order.append(frame.stamp)
            record["published"] = self.ros.publish(raw, info)
            if self.writer is not None:
                self.writer.write_input(frame, self.image_topic, self.info_topic, raw)
            self._process(block=False)
            frame = ahead.get()
        reader.join()

    def drain(self, node: ChildProcess) -> None:
        """Collect outputs until every frame is answered or nothing arrives for a while."""
        while True:
            pending = [s for s in self.order if not self._complete(self.frames[s])]
            if not pending:
                break
            latencies = [r["latency_ms"] for r in self.frames.values() if r.get("latency_ms") is not None]
            quiet_s = min(max(2.0, 3 * max(latencies, default=0.0) / 1e3), 30.0)
            if time.perf_counter() - max(self.collector.last_arrival, self.published_last) > quiet_s:
                break
            if node.proc.poll() is not None:
                break
            self._process(block=True)
        self._process(block=False)

    @property
    def published_last(self) -> float:
        return self.frames[self.order[-1]]["published"] if self.order else self.published_first

    def _complete(self, record: dict[str, Any]) -> bool:
        return all(topic in record["arrival"] for topic in self.expected)

    def _process(self, block: bool) -> None:
        while True:
            try:
                relative, arrival, raw = self.collector.inbox.get(timeout=0.05) if block else self.collector.inbox.get_nowait()
            except queue.Empty:
                return
            block = False
            stamp = _stamp_of(relative, raw)
            record = self.frames.get(stamp)
            if record is None:
                continue  # a late warm-up output
            record["arrival"].setdefault(relative, arrival)
            if relative in _SCORED:
                record["outputs"][relative] = raw
            if self.writer is not None:
                self.writer.write_raw(
                    self.writer.topic(relative), OUTPUT_TOPICS[relative].msgtype, record["frame"].log_time, raw
                )
            if self._complete(record) and "latency_ms" not in record:
                record["latency_ms"] = (max(record["arrival"].values()) - record["published"]) * 1e3
                self._score(record)
                self._release_dropped_before(record["position"])

    def _release_dropped_before(self, position: int) -> None:
        """The node answers frames in order: earlier frames still without any output were dropped."""
        while self._unreleased < position:
            record = self.frames[self.order[self._unreleased]]
            if not record["arrival"] and isinstance(record["frame"], BagFrame):
                frame = record["frame"]
                record["frame"] = _Released(frame.index, frame.stamp, frame.log_time)
            self._unreleased += 1

    def _score(self, record: dict[str, Any]) -> None:
        frame = record["frame"]
        out = record.pop("outputs")
        if not isinstance(frame, BagFrame):
            return  # answered after it was given up as dropped: timed, not scored
        decoded = {k: messages.TYPESTORE.deserialize_cdr(v, OUTPUT_TOPICS[k].msgtype) for k, v in out.items()}
        semantic = messages.decode_image(decoded["semantic/labels"]) if "semantic/labels" in decoded else None
        instances = None
        if "instance/labels" in decoded and semantic is not None:
            scores = scores_from_markers(decoded["instance/markers"]) if "instance/markers" in decoded else None
            instances = instances_from_map(messages.decode_image(decoded["instance/labels"]), semantic, scores)
        disparity_msg = decoded.get("depth/disparity")
        disparity = messages.decode_image(disparity_msg.image) if disparity_msg is not None else None
        # Without a recorded stereo partner the ground truth's rig is taken to be the model's,
        # whose baseline the node's DisparityImage carries (t).
        model_baseline = float(disparity_msg.t) if disparity_msg is not None and disparity_msg.t > 0 else None
        self.scorer.add(
            frame.index, frame.stamp, frame.rgb, frame.ground_truth, semantic, instances, disparity,
            frame.focal_baseline(model_baseline),
        )
        record["frame"] = _Released(frame.index, frame.stamp, frame.log_time)  # free the pixels

    def report(self, bag: Any, model: Any, image_topic: str, gt_topics: dict[str, str], out_bag: Any,
               rate_factor: float, stats: Any, outputs: list[str]) -> dict[str, Any]:
        timeline = []
        first_log = self.frames[self.order[0]]["frame"].log_time if self.order else 0
        for stamp in self.order:
            r = self.frames[stamp]
            timeline.append({
                "index": r["frame"].index, "stamp": stamp, "time_s": (r["frame"].log_time - first_log) / 1e9,
                "latency_ms": r.get("latency_ms"), "dropped": not r["arrival"],
            })
        published = len(timeline)
        delivered = [t for t in timeline if t["latency_ms"] is not None]
        dropped = sum(t["dropped"] for t in timeline)
        incomplete = published - len(delivered) - dropped
        arrivals = [max(r["arrival"].values()) for r in self.frames.values() if r["arrival"]]
        span = (max(arrivals) - self.published_first) if arrivals else float("nan")
        notes = reading_notes(stats, gt_topics)
        if incomplete:
            notes.append(f"{incomplete} frame(s) got only some of the outputs {self.expected}")
        if self.restamped:
            notes.append(f"{self.restamped} image(s) repeated an earlier header stamp; sent stamped with their log time")
        return {
            "summary": {
                "bag": str(bag), "mode": "live", "model": str(model), "image_topic": image_topic,
                "rate_factor": rate_factor, "backend": "perception node",
                "device": " ".join(self.node_params) or "node defaults",
                "ground_truth": ", ".join(sorted(gt_topics.values())), "output_bag": str(out_bag) if out_bag else None,
                "outputs_subscribed": outputs, "outputs_expected": self.expected,
            },
            "frames": {
                "read": stats.images_read, "published": published, "evaluated": len(delivered), "dropped": dropped,
                "incomplete": incomplete, "expected": stats.images_expected,
                "skipped_encodings": dict(stats.skipped_encodings), "undecodable": stats.undecodable,
                "scored": self.scorer.frames_scored,
            },
            "speed": {
                "throughput_fps": len(delivered) / span if span > 0 else float("nan"),
                "publish_rate_hz": published / max(self.published_last - self.published_first, 1e-9) if published > 1 else float("nan"),
                "drop_rate": dropped / published if published else float("nan"),
                "latency_ms": latency_percentiles([t["latency_ms"] for t in delivered]),
                "latency_definition": "image publish -> arrival of the frame's last expected output, over DDS (node subprocess)",
            },
            "metrics": self.scorer.metrics(),
            "notes": notes,
            "timeline": timeline,
        }


class _Released:
    """What stays of a scored frame: its identity, not its pixels."""

    def __init__(self, index: int, stamp: int, log_time: int) -> None:
        self.index, self.stamp, self.log_time = index, stamp, log_time
