"""The evaluation report folder: ``report.json``, ``summary.md`` and PNG plots.

JSON is for machines (CI trend lines, comparisons between models); the markdown summary is
what a person reads first, with the plots linked; the plots show what a table hides: latency
drifting over a drive, the classes that fail, where in the image the errors are.

Plots use matplotlib's object API (``Figure``) rather than ``pyplot``: no GUI backend is ever
selected, so reports render on a headless vehicle computer or CI machine.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from mtl_perception.data.labels import CLASS_NAMES, PALETTE
from mtl_perception.evaluation.metric_names import DEPTH_METRICS
from mtl_perception.io_utils import atomic_write_text

#: Headline metric keys in report order (paper's Table 1 names, then instance quality).
HEADLINE = ("miou", "disparity_err_px", "disparity_rmse_px", *DEPTH_METRICS, "AP", "AP50", "PQ")


def _clean(value: Any) -> Any:
    """JSON-safe copy: NaN and infinities become null, numpy scalars plain numbers."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.integer, np.floating)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def latency_percentiles(latencies_ms: Sequence[float]) -> dict[str, float]:
    """p50/p90/p95/p99/max/mean of the given latencies (NaN for none)."""
    values = np.asarray([v for v in latencies_ms if math.isfinite(v)], dtype=np.float64)
    if values.size == 0:
        return {k: math.nan for k in ("p50", "p90", "p95", "p99", "max", "mean")}
    p50, p90, p95, p99 = np.percentile(values, [50, 90, 95, 99])
    return {"p50": p50, "p90": p90, "p95": p95, "p99": p99, "max": values.max(), "mean": values.mean()}


def reading_notes(stats: Any, gt_topics: dict[str, str]) -> list[str]:
    """What of the bag could not be read or scored (``reader.ReadStats``), in words for the report."""
    notes = list(stats.notes)
    for encoding, count in stats.skipped_encodings.items():
        notes.append(f"{count} image(s) in unsupported encoding {encoding!r} skipped")
    if stats.undecodable:
        notes.append(f"{stats.undecodable} message(s) could not be decoded")
    if not gt_topics:
        notes.append("no ground-truth topics: accuracy not evaluated")
    else:
        missing = sorted({"semantic", "instance", "disparity"} - set(gt_topics))
        if missing:
            notes.append(f"no ground truth for {', '.join(missing)}")
    notes.append("instance_err_px not evaluated: the outputs carry instance maps, not the network's centroid vectors")
    return notes


def _plot_latency(path: Path, timeline: Sequence[dict[str, Any]], title: str) -> None:
    fig = Figure(figsize=(8, 3.2), layout="constrained")
    ax = fig.add_subplot()
    t = np.array([f["time_s"] for f in timeline], dtype=np.float64)
    lat = np.array([f["latency_ms"] if f["latency_ms"] is not None else np.nan for f in timeline], dtype=np.float64)
    ok = np.isfinite(lat)
    ax.plot(t[ok], lat[ok], ".-", ms=3, lw=0.8, label="latency")
    dropped = [f["time_s"] for f in timeline if f.get("dropped")]
    if dropped:
        ax.plot(dropped, np.zeros(len(dropped)), "x", color="tab:red", ms=4, label=f"dropped ({len(dropped)})")
    ax.set_xlabel("bag time (s)")
    ax.set_ylabel("ms")
    ax.set_title(title)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    fig.savefig(path, dpi=100)


def _plot_iou(path: Path, metrics: dict[str, Any]) -> None:
    names = [n for n in CLASS_NAMES if f"iou_{n}" in metrics]
    values = np.array([metrics[f"iou_{n}"] if metrics[f"iou_{n}"] is not None else np.nan for n in names], float)
    fig = Figure(figsize=(6, 5), layout="constrained")
    ax = fig.add_subplot()
    y = np.arange(len(names))
    colors = PALETTE[[CLASS_NAMES.index(n) for n in names]] / 255.0
    ax.barh(y, np.nan_to_num(values), color=colors, edgecolor="black", linewidth=0.4)
    for yi, v in zip(y, values):
        ax.text(0.01 if np.isnan(v) else v + 0.01, yi, "n/a" if np.isnan(v) else f"{v:.2f}", va="center", fontsize=7)
    ax.set_yticks(y, names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.1)
    ax.set_xlabel("IoU")
    ax.set_title(f"per-class IoU (mIoU {_fmt(metrics.get('miou'), 3)})")
    fig.savefig(path, dpi=100)


def _plot_example(path: Path, example: dict[str, Any]) -> None:
    """Input, semantic errors and disparity errors of one frame side by side."""
    panels: list[tuple[str, np.ndarray, dict[str, Any]]] = [("input", example["rgb"], {})]
    if "semantic_pred" in example:
        pred, gt = example["semantic_pred"], example["semantic_gt"]
        shown = PALETTE[pred].astype(np.float32) / 255.0
        wrong = (pred != gt) & (gt != 255)
        shown[wrong] = 0.35 * shown[wrong] + 0.65 * np.array([1.0, 0.0, 0.0])
        panels.append((f"semantic (errors red: {wrong.sum() / max((gt != 255).sum(), 1):.1%})", shown, {}))
    if "disparity_pred" in example:
        gt = example["disparity_gt"]
        err = np.where(np.isfinite(gt), np.abs(example["disparity_pred"] - np.nan_to_num(gt)), np.nan)
        finite = err[np.isfinite(err)]
        vmax = float(np.percentile(finite, 99)) if finite.size else 1.0
        cmap = colormaps["magma"].with_extremes(bad="0.8")  # grey: no ground truth
        panels.append(("|disparity error| (px), grey = no gt", err, {"cmap": cmap, "vmin": 0.0, "vmax": max(vmax, 1e-3)}))
    fig = Figure(figsize=(4 * len(panels), 2.6), layout="constrained")
    for i, (title, image, style) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        shown = ax.imshow(image, interpolation="nearest", **style)
        if style:
            fig.colorbar(shown, ax=ax, fraction=0.046)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.suptitle(f"frame {example['index']} (stamp {example['stamp'] / 1e9:.3f} s)", fontsize=9)
    fig.savefig(path, dpi=100)


def write_report(folder: str | Path, report: dict[str, Any], examples: Sequence[dict[str, Any]] = ()) -> Path:
    """Write ``report.json``, ``summary.md`` and the plots into ``folder``; return the summary's path.

    ``report`` is the dict built by the evaluators (keys ``summary``, ``speed``, ``frames``,
    ``metrics``, ``notes``, ``timeline``); ``examples`` are frames with arrays for error maps.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    plots: list[tuple[str, str]] = []
    timeline = report.get("timeline", [])
    if timeline:
        _plot_latency(folder / "latency.png", timeline, f"{report['summary']['mode']} latency per frame")
        plots.append(("Latency over time", "latency.png"))
    metrics = report.get("metrics", {})
    if any(k.startswith("iou_") for k in metrics):
        _plot_iou(folder / "per_class_iou.png", _clean(metrics))
        plots.append(("Per-class IoU", "per_class_iou.png"))
    for example in examples:
        name = f"errors_frame_{example['index']:05d}.png"
        _plot_example(folder / name, example)
        plots.append((f"Errors, frame {example['index']}", name))
    report = {**report, "plots": [name for _, name in plots]}
    atomic_write_text(folder / "report.json", json.dumps(_clean(report), indent=2) + "\n")
    summary = folder / "summary.md"
    atomic_write_text(summary, markdown_summary(report, plots))
    return summary


def markdown_summary(report: dict[str, Any], plots: Sequence[tuple[str, str]] = ()) -> str:
    """The human-readable page of a report dict."""
    s, speed, frames, metrics = report["summary"], report["speed"], report["frames"], report.get("metrics", {})
    lines = [f"# Bag evaluation: {s['bag']}", ""]
    lines += [f"- mode: **{s['mode']}**" + (f" (rate factor {s['rate_factor']:.3g})" if s.get("rate_factor") else "")]
    lines += [f"- model: `{s['model']}` ({s.get('backend', 'torch')} on {s.get('device', 'cpu')})"]
    lines += [f"- image topic: `{s['image_topic']}`; ground truth: {s.get('ground_truth') or 'none'}"]
    if s.get("output_bag"):
        lines += [f"- output bag: `{s['output_bag']}`"]
    lines += ["", "## Frames", "", "| read | evaluated | dropped | skipped (encoding) | undecodable |", "|---|---|---|---|---|"]
    skipped = ", ".join(f"{n} {e}" for e, n in frames.get("skipped_encodings", {}).items()) or "0"
    lines += [
        f"| {frames['read']} | {frames['evaluated']} | {frames.get('dropped', 0)} | {skipped} | {frames.get('undecodable', 0)} |"
    ]
    lat = speed["latency_ms"]
    lines += ["", "## Speed", "", "| throughput (fps) | drop rate | latency p50 | p90 | p99 | max (ms) |", "|---|---|---|---|---|---|"]
    lines += [
        f"| {_fmt(speed['throughput_fps'], 1)} | {_fmt(speed['drop_rate'], 3)} | {_fmt(lat['p50'], 1)} | "
        f"{_fmt(lat['p90'], 1)} | {_fmt(lat['p99'], 1)} | {_fmt(lat['max'], 1)} |"
    ]
    if speed.get("latency_definition"):
        lines += ["", f"Latency: {speed['latency_definition']}"]
    shown = [k for k in HEADLINE if k in metrics]
    if shown:
        lines += ["", "## Accuracy against the bag's ground truth", ""]
        lines += ["| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
        lines += ["| " + " | ".join(_fmt(metrics[k]) for k in shown) + " |"]
    notes = report.get("notes", [])
    if notes:
        lines += ["", "## What could not be evaluated", ""] + [f"- {n}" for n in notes]
    if plots:
        lines += ["", "## Plots", ""] + [f"![{title}]({name})" for title, name in plots]
    return "\n".join(lines) + "\n"
