"""Offline bag evaluation: every frame through the Pipeline, one after the other, as fast as possible.

This is the reproducible measurement: no ROS, no transport, no frame dropped, the same
numbers on every run of the same bag and model (up to the backend's own determinism).
Latency is the Pipeline call of one frame (pre-processing, forward, post-processing, copy
back), throughput its inverse over the bag; what the ROS transport and a camera faster than
the model add is what ``live_eval`` measures.
"""
from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import numpy as np

from mtl_perception.bag import topics as layout
from mtl_perception.bag.output_bag import OutputBag
from mtl_perception.bag.reader import BagFrame, BagInput
from mtl_perception.bag.report import latency_percentiles, reading_notes
from mtl_perception.bag.scoring import BagScorer, instances_from_list
from mtl_perception.errors import UserError

#: Pipeline outputs computed offline: everything the output bag and the scoring use.
_OUTPUTS = frozenset({"semantic", "instances", "disparity", "semantic_color", "instance_color"})
#: Metric depth needs a camera (focal length and baseline): from camera_info or the model's metadata.
_DEPTH_OUTPUTS = frozenset({"depth", "depth_color"})


def _outputs(pipeline: Any, camera: Any | None) -> frozenset[str]:
    """What to ask of the Pipeline for a frame: everything the model can give, depth when a camera is known."""
    meta = pipeline.metadata
    baseline = (camera.baseline if camera is not None else None) or meta.camera_baseline
    has_fx = camera is not None or meta.camera_fx is not None
    wanted = _OUTPUTS | (_DEPTH_OUTPUTS if baseline and has_fx else frozenset())
    return wanted & pipeline.available


def offline_pipeline(model: Path, backend: str, device: str) -> Any:
    """The Pipeline the node would run for this model, outputs at the input resolution."""
    from mtl_perception.inference import Pipeline, create_backend

    return Pipeline(create_backend(backend, model_path=model, device=device), output_resolution="input")


def evaluate_offline(
    bag: str | Path,
    model: str | Path,
    image_topic: str = "/camera/image",
    gt_prefix: str | None = "/gt",
    camera_info_topic: str | None = None,
    out_bag: str | Path | None = None,
    namespace: str = layout.OUTPUT_NAMESPACE,
    backend: str = "auto",
    device: str = "auto",
    limit: int | None = None,
    pipeline: Any | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Evaluate ``bag``; return the report dict (see ``report.write_report``) and error-map examples."""
    scorer = BagScorer()
    timeline: list[dict[str, Any]] = []
    stage_ms: dict[str, list[float]] = {}
    with BagInput(bag) as source:
        source.require_image_topic(image_topic)  # before loading the model: fail fast on a wrong topic
        gt_topics = source.ground_truth_topics(gt_prefix) if gt_prefix else {}
        frames = source.frames(image_topic, gt_prefix, camera_info_topic)
        first = next(frames, None)
        if first is None:  # a topic with no (decodable) message would otherwise be a silent empty report
            raise UserError(f"{bag}: no usable image on {image_topic}")
        pipeline = pipeline or offline_pipeline(Path(model), backend, device)
        writer = OutputBag(out_bag, namespace) if out_bag else None
        info_topic = camera_info_topic or layout.camera_info_topic(image_topic)
        start = time.perf_counter()
        first_log_time: int | None = None
        no_depth = 0
        try:
            for frame in itertools.chain([first], frames):
                if limit is not None and frame.index >= limit:
                    break
                first_log_time = frame.log_time if first_log_time is None else first_log_time
                camera = frame.camera()
                outputs = _outputs(pipeline, camera)
                if not outputs & _DEPTH_OUTPUTS:
                    no_depth += 1
                t0 = time.perf_counter()
                result = pipeline(frame.rgb, encoding="rgb", camera=camera, outputs=outputs)
                latency_ms = (time.perf_counter() - t0) * 1e3
                for stage, ms in result.timings.items():
                    stage_ms.setdefault(stage, []).append(float(ms))
                timeline.append({
                    "index": frame.index, "stamp": frame.stamp, "time_s": (frame.log_time - first_log_time) / 1e9,
                    "latency_ms": latency_ms, "dropped": False,
                })
                scorer.add(
                    frame.index, frame.stamp, frame.rgb, frame.ground_truth,
                    semantic=result.semantic,
                    instances=None if result.instances is None else instances_from_list(result.instances, result.instance_list),
                    disparity=result.disparity,
                    focal_baseline=frame.focal_baseline(pipeline.metadata.camera_baseline),
                )
                if writer is not None:
                    writer.write_input(frame, image_topic, info_topic)
                    baseline = (camera.baseline if camera is not None else None) or pipeline.metadata.camera_baseline
                    writer.write_result(frame.log_time, frame.header, result, camera, baseline)
        finally:
            if writer is not None:
                writer.close()
        wall_s = time.perf_counter() - start
        stats = source.stats

    n = len(timeline)
    busy_s = sum(t["latency_ms"] for t in timeline) / 1e3
    report = {
        "summary": {
            "bag": str(bag), "mode": "offline", "model": str(model), "image_topic": image_topic,
            "backend": type(pipeline.backend).__name__, "device": str(pipeline.backend.device),
            "ground_truth": ", ".join(sorted(gt_topics.values())), "output_bag": str(out_bag) if out_bag else None,
        },
        "frames": {
            "read": stats.images_read, "evaluated": n, "dropped": 0, "expected": stats.images_expected,
            "skipped_encodings": dict(stats.skipped_encodings), "undecodable": stats.undecodable,
            "scored": scorer.frames_scored,
        },
        "speed": {
            "throughput_fps": n / busy_s if busy_s > 0 else float("nan"),
            "wall_s": wall_s,
            "drop_rate": 0.0,
            "latency_ms": latency_percentiles([t["latency_ms"] for t in timeline]),
            "stage_ms_mean": {k: float(np.mean(v)) for k, v in stage_ms.items()},
            "latency_definition": "one Pipeline call per frame (pre-process, forward, post-process, copy); no transport",
        },
        "metrics": scorer.metrics(),
        "notes": reading_notes(stats, gt_topics) + (
            [f"{no_depth} frame(s) without metric depth: no camera_info and no training camera in the model"]
            if no_depth else []
        ),
        "timeline": timeline,
    }
    return report, scorer.examples()
