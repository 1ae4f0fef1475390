"""Camera image in, semantic + instance + depth out: the one pipeline behind the node, the demo,
the bag replay and the evaluator.

Stages (all on the backend's device; the host sees the image once and the results once):
1. preprocess: uint8 H x W x 3 (rgb or bgr; numpy or a torch tensor on any device) to the
   network size, bilinear with ``antialias=False`` (what training used), channels swapped
   at that size for bgr, then normalised (skipped for raw-input models, which take uint8
   NHWC and normalise in the graph);
2. forward: the backend;
3. postprocess, at the network's resolution: argmax, instance grouping
   (``postprocess.grouping``), disparity clamped at 0, metric depth and, only when asked,
   colour images. With ``output_resolution: input`` the results are then resized to the
   camera's size with the device's fast kernels (``postprocess.resize``: OpenCV on the CPU):
   nearest for ids and the colour images of ids (the same pixels as colouring resized ids),
   bilinear for disparity, whose values are multiplied by ``output_width / network_width``
   because disparity is measured in pixels; depth is recomputed from that disparity. So the
   per-frame cost grows with camera pixels only in the resizing and in depth itself.
   ``network_outputs`` returns outputs at the network's resolution as well
   (``result.network``), for what is better made small: point clouds and markers;
4. copy: the requested arrays packed into one buffer and copied to the host once.

Only what ``outputs`` asks for is computed: no grouping without ``instances`` or
``instance_color``, no depth without ``depth`` or ``depth_color``, no colour image unless asked.

Metric depth: Z = fx * B / d, with d the disparity at the output resolution and fx the focal
length *at that same resolution*. B is the baseline of the stereo rig the network was trained
on (model metadata, which falls back to the Cityscapes camera when the training config
recorded none): the network's disparity refers to it, whatever camera runs it now. A
``CameraModel`` (e.g. from ``camera_info``) gives fx (and cx, cy), scaled from its calibration
size to the output size; its ``baseline``, when set, replaces the training one (the node sets
it only when asked: ``inference.camera``). Without a camera, the image is assumed to come from
the training camera (same field of view): fx = training fx scaled to the image width. Every
result carries the camera at its resolution (``result.camera``, with the baseline used), from
which the node publishes the outputs' ``camera_info``. Sky pixels (semantic) are +inf,
unknown or tiny disparity NaN (REP 118).

Instance scores: ``mean semantic confidence x vote focus`` (see ``grouping``). The semantic
confidence (softmax maximum) is computed only at thing pixels, since it is only used there;
models exported with ``--argmax`` have no logits, so their scores are the vote focus alone.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from mtl_perception.data.labels import IS_THING_TRAIN_ID
from mtl_perception.errors import UserError
from mtl_perception.inference.backend import Backend
from mtl_perception.inference.camera import CameraModel
from mtl_perception.postprocess.colormap import colorize_depth, colorize_instances, colorize_semantic
from mtl_perception.postprocess.depth import disparity_to_depth, sky_mask
from mtl_perception.postprocess import resize
from mtl_perception.postprocess.grouping import Instances, build_grouper

OUTPUTS = frozenset({"semantic", "instances", "disparity", "depth", "semantic_color", "instance_color", "depth_color"})
DEFAULT_OUTPUTS = frozenset({"semantic", "instances", "depth"})
ENCODINGS = ("rgb", "bgr")
#: The network heads each output needs.
_NEEDS: dict[str, set[str]] = {
    "semantic": {"semantic"},
    "semantic_color": {"semantic"},
    "instances": {"semantic", "instance"},
    "instance_color": {"semantic", "instance"},
    "disparity": {"depth"},
    "depth": {"depth"},
    "depth_color": {"depth"},
}


@dataclass(frozen=True)
class InstanceInfo:
    """One instance: ``id`` (its value in the instance map), class, size, centroid (u, v) px, score."""

    id: int
    train_id: int
    pixels: int
    centroid: tuple[float, float]
    score: float


#: How the colour outputs look, the same in the node (its parameters' defaults), ``bag eval``'s
#: output bags and the demo: class colours at this opacity over the camera image, and the depth
#: range (m) spread over the depth colour scale.
COLOR_ALPHA = 0.6
DEPTH_COLOR_RANGE_M = (3.0, 80.0)


@dataclass
class PipelineResult:
    """Host arrays at the output resolution; ``None`` for outputs not requested."""

    semantic: np.ndarray | None = None  # (H, W) uint8 train ids, 255 = none
    instances: np.ndarray | None = None  # (H, W) uint16, 0 = none, k = instance_list[k - 1]
    instance_list: list[InstanceInfo] = field(default_factory=list)
    disparity: np.ndarray | None = None  # (H, W) float32 pixels at the output resolution
    depth: np.ndarray | None = None  # (H, W) float32 metres, NaN unknown, +inf sky
    semantic_color: np.ndarray | None = None  # (H, W, 3) uint8
    instance_color: np.ndarray | None = None
    depth_color: np.ndarray | None = None
    image: np.ndarray | None = None  # (H, W, 3) uint8 RGB: the camera image the network saw, in results at its resolution made for network_outputs
    camera: CameraModel | None = None  # intrinsics at the output resolution, with the baseline of depth
    network: "PipelineResult | None" = None  # network_outputs at the network's resolution, when it differs
    timings: dict[str, float] = field(default_factory=dict)  # ms: preprocess, forward, postprocess, copy, total


@dataclass(frozen=True)
class CameraFrame:
    """One camera's image for ``Pipeline.process_many``: uint8 H x W x 3, its channel order and
    its intrinsics (None: the model's training camera)."""

    image: np.ndarray | torch.Tensor
    encoding: str = "rgb"
    camera: CameraModel | None = None


@dataclass
class _FramePlan:
    """One frame on the device with the sizes and cameras of its outputs."""

    rgb: torch.Tensor  # (H, W, 3) uint8
    bgr: bool
    net_size: tuple[int, int]
    camera_out: CameraModel  # at the output resolution
    camera_net: CameraModel  # at the network's resolution
    baseline: float


class _StageClock:
    """Per-stage times: CUDA events on a GPU (no synchronisation between stages), else wall time.

    ``pause``/``resume`` leave out the time a forwarded batch waits for ``Pipeline.finish``
    (on the node's publishing thread), so stages and total are the pipeline's own work."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.wall = 0.0
        self.start = time.perf_counter()
        self.marks: list[tuple[str, Any]] = [("", self._now())]

    def _now(self) -> Any:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def mark(self, stage: str) -> None:
        self.marks.append((stage, self._now()))

    def pause(self) -> None:
        self.wall += time.perf_counter() - self.start

    def resume(self) -> None:
        self.start = time.perf_counter()
        self.marks.append(("", self._now()))  # a gap: not a stage

    def timings(self) -> dict[str, float]:
        """Milliseconds per stage (call after the last stage) and the wall-clock total."""
        if self.cuda:
            self.marks[-1][1].synchronize()  # normally a no-op: the host copy synchronised
        out = {}
        for (_, a), (stage, b) in zip(self.marks, self.marks[1:]):
            if stage:
                out[stage] = a.elapsed_time(b) if self.cuda else (b - a) * 1000.0
        out["total"] = (self.wall + time.perf_counter() - self.start) * 1000.0
        return out


@dataclass
class ForwardedBatch:
    """One forward pass's outputs, post-processing still to do (``Pipeline.finish``).

    The split lets the node post-process a batch on its publishing thread while the next
    batch runs through the network. The outputs are the batch's own (copied on the device
    when the backend reuses its buffers), so any number of later forwards may come first.
    """

    plans: list[_FramePlan]
    smalls: list[torch.Tensor]  # each image at the network's size, (h, w, 3) uint8 RGB
    raw: dict[str, torch.Tensor]
    outputs: frozenset[str]
    network_outputs: frozenset[str]
    clock: _StageClock
    ready: Any = None  # GPU only: a CUDA event recorded after the forward


def _recorded_event() -> Any:
    """GPU only: a CUDA event recorded now on the current stream."""
    event = torch.cuda.Event()
    event.record()
    return event


def _base(key: str) -> str:
    """The output a result key belongs to (``instance_table`` travels with ``instances``)."""
    return "instances" if key == "instance_table" else key


Layout = list[tuple[str, int, int, torch.dtype, tuple[int, ...]]]


def pack(tensors: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, Layout]:
    """All ``tensors`` as one uint8 buffer on their device, plus where each one lies in it.

    Each part is padded to 16 bytes so that every slice is aligned for its element type.
    """
    parts, layout, offset = [], [], 0
    for name, t in tensors.items():
        raw = t.contiguous().view(-1).view(torch.uint8)
        pad = (-raw.numel()) % 16
        parts += [raw, raw.new_zeros(pad)] if pad else [raw]
        layout.append((name, offset, raw.numel(), t.dtype, tuple(t.shape)))
        offset += raw.numel() + pad
    return torch.cat(parts), layout


def unpack(buffer: torch.Tensor, layout: Layout) -> dict[str, np.ndarray]:
    """Numpy views into a host ``buffer`` made by :func:`pack` (no copies)."""
    return {name: buffer[o : o + n].view(dtype).reshape(shape).numpy() for name, o, n, dtype, shape in layout}


def _to_host(tensors: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """One device-to-host copy for all ``tensors`` (on the CPU: views, no copy at all)."""
    if not tensors:
        return {}
    device = next(iter(tensors.values())).device
    if device.type == "cpu":
        return {k: v.contiguous().numpy() for k, v in tensors.items()}
    buffer, layout = pack(tensors)
    host = torch.empty(buffer.numel(), dtype=torch.uint8, pin_memory=True)  # torch caches pinned blocks
    host.copy_(buffer, non_blocking=True)
    torch.cuda.current_stream(device).synchronize()
    return unpack(host, layout)


def _channel_argmax(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(C, H, W) float logits -> (their maximum, the first class reaching it as uint8)."""
    best = logits.max(0)
    ids = np.zeros(best.shape, np.uint8)
    reached = np.empty(best.shape, bool)
    for c in range(logits.shape[0] - 1, -1, -1):  # the lowest class written last wins ties
        np.equal(logits[c], best, out=reached)
        np.putmask(ids, reached, c)
    return best, ids


class Pipeline:
    """Preprocess, backend, postprocess, one host copy. See the module docstring.

    ``output_resolution``: ``input`` (results at the camera image's size) or ``network``.
    ``network_size``: (height, width) the network runs at; default the model's training size.
    ``grouping`` and ``grouping_settings``: the instance grouping method and its settings.
    ``color_alpha``: semantic colours over the image (1 = colours only). ``depth_range``:
    metres mapped to the depth colour scale. ``cpu_threads``: torch threads for pre- and
    post-processing on the CPU (the forward keeps the backend's own): these are small,
    memory-bound operations, and with two threads each one waits at a barrier for a thread the
    OS may have given to another process (a busy second core makes them 100x slower, not 2x
    faster). ``None`` leaves torch's setting.
    torch built with OpenMP (x86 and Jetson wheels) keeps the setting per thread, so the node's
    two threads (``forward_many`` on one, ``finish`` on the other) each restore their own;
    a thread's first parallel torch call starts from the value last set by any thread.
    """

    def __init__(
        self,
        backend: Backend,
        grouping: str = "votes",
        output_resolution: str = "input",
        network_size: tuple[int, int] | None = None,
        grouping_settings: Mapping[str, Any] | None = None,
        min_disparity: float = 0.05,
        color_alpha: float = COLOR_ALPHA,
        depth_range: tuple[float, float] = DEPTH_COLOR_RANGE_M,
        cpu_threads: int | None = 1,
    ) -> None:
        if output_resolution not in ("input", "network"):
            raise UserError(f"output_resolution must be 'input' or 'network', got {output_resolution!r}")
        meta = backend.metadata
        if network_size is None and meta.height and meta.width:
            network_size = (meta.height, meta.width)
        if network_size is not None and not meta.dynamic and tuple(network_size) != (meta.height, meta.width):
            raise UserError(
                f"this model is fixed at {meta.height}x{meta.width}; cannot run it at "
                f"{network_size[0]}x{network_size[1]} (export with --dynamic)"
            )
        self.backend = backend
        self.metadata = meta
        self.device = backend.device
        self.output_resolution = output_resolution
        self.network_size = tuple(network_size) if network_size else None
        self.grouper = build_grouper(grouping, **dict(grouping_settings or {}))
        self.min_disparity = min_disparity
        self.color_alpha = color_alpha
        self.depth_range = depth_range
        self.cpu_threads = cpu_threads
        self.available = frozenset(k for k, needs in _NEEDS.items() if needs <= set(meta.tasks))
        dev = self.device
        self._mean255 = torch.tensor(meta.mean, device=dev).view(1, 3, 1, 1) * 255.0
        self._inv_std255 = 1.0 / (torch.tensor(meta.std, device=dev).view(1, 3, 1, 1) * 255.0)
        self._is_thing = torch.as_tensor(IS_THING_TRAIN_ID, device=dev)
        # GPU only: ``finish`` runs on its own stream, so that its host copy waits for its own
        # batch only, not for the next forward another thread has queued meanwhile.
        self._finish_stream = torch.cuda.Stream(dev) if dev.type == "cuda" else None

    # ------------------------------------------------------------------ per frame
    def __call__(
        self,
        image: np.ndarray | torch.Tensor,
        encoding: str = "rgb",
        camera: CameraModel | None = None,
        outputs: Iterable[str] = DEFAULT_OUTPUTS,
        network_outputs: Iterable[str] = (),
    ) -> PipelineResult:
        """``outputs`` at the output resolution; ``network_outputs`` also at the network's
        (in ``result.network`` when the two resolutions differ: what points and markers are
        made from, whatever size the images are published at)."""
        return self.process_many([CameraFrame(image, encoding, camera)], outputs, network_outputs)[0]

    @property
    def max_batch(self) -> int | None:
        """Images one forward pass takes (None: any number); more are split into several."""
        return self.backend.max_batch

    def process_many(
        self,
        frames: Sequence["CameraFrame"],
        outputs: Iterable[str] = DEFAULT_OUTPUTS,
        network_outputs: Iterable[str] = (),
    ) -> list[PipelineResult]:
        """The results of several cameras' images (any sizes), one forward pass per ``max_batch``.

        Every image is resized to the network's size, so images of different cameras share one
        batch; each result is then made at its own camera's resolution. Stage timings are those
        of the batch the frame was in (the forward pass is shared).
        """
        return self.finish(self.forward_many(frames, outputs, network_outputs))

    def forward_many(
        self,
        frames: Sequence["CameraFrame"],
        outputs: Iterable[str] = DEFAULT_OUTPUTS,
        network_outputs: Iterable[str] = (),
    ) -> list[ForwardedBatch]:
        """The first half of ``process_many``: preprocess and forward; ``finish`` does the rest,
        on any thread (one ``finish`` at a time per pipeline: the grouper keeps state)."""
        outputs = self._check_outputs(outputs)
        network_outputs = self._check_outputs(network_outputs)
        plans = [self._plan(frame) for frame in frames]
        size = self.max_batch or max(len(plans), 1)
        batches: list[ForwardedBatch] = []
        for first in range(0, len(plans), size):
            batches += self._forward_plans(plans[first : first + size], outputs, network_outputs)
        return batches

    def finish(self, batches: Sequence[ForwardedBatch]) -> list[PipelineResult]:
        """Post-processing and the host copy of ``forward_many``'s batches, results in frame order."""
        return [result for batch in batches for result in self._finish_batch(batch)]

    def _plan(self, frame: "CameraFrame") -> "_FramePlan":
        rgb, bgr = self._image_tensor(frame.image, frame.encoding)
        in_h, in_w = rgb.shape[:2]
        net_h, net_w = self.network_size or (in_h, in_w)
        out_h, out_w = (in_h, in_w) if self.output_resolution == "input" else (net_h, net_w)
        camera_out, baseline = self._output_camera(frame.camera, (in_h, in_w), (out_h, out_w))
        return _FramePlan(rgb, bgr, (net_h, net_w), camera_out, camera_out.scaled(net_w, net_h), baseline)

    def _forward_plans(
        self, plans: list["_FramePlan"], outputs: frozenset[str], network_outputs: frozenset[str]
    ) -> list[ForwardedBatch]:
        sizes = {plan.net_size for plan in plans}
        if len(sizes) > 1:  # only without a network size (any-size model at each image's own size)
            return [b for plan in plans for b in self._forward_plans([plan], outputs, network_outputs)]
        (net_h, net_w), = sizes
        clock = _StageClock(self.device)
        with torch.inference_mode():
            with self._threads():
                inputs = [self._preprocess(plan.rgb[None], net_h, net_w, plan.bgr) for plan in plans]
                x = inputs[0][0] if len(inputs) == 1 else torch.cat([x for x, _ in inputs])
            clock.mark("preprocess")
            raw = self.backend.forward(x)
            if self.backend.reuses_outputs:  # the next forward would overwrite them before finish
                raw = {k: v.clone() for k, v in raw.items()}
            clock.mark("forward")
        clock.pause()
        ready = _recorded_event() if self._finish_stream is not None else None
        return [ForwardedBatch(plans, [small[0] for _, small in inputs], raw, outputs, network_outputs, clock, ready)]

    def _finish_batch(self, batch: ForwardedBatch) -> list[PipelineResult]:
        plans, raw, clock = batch.plans, batch.raw, batch.clock
        with torch.inference_mode(), self._on_finish_stream(batch.ready):
            clock.resume()
            hosts = []
            with self._threads():
                for i, (plan, small) in enumerate(zip(plans, batch.smalls)):
                    one = raw if len(plans) == 1 else {k: v[i : i + 1] for k, v in raw.items()}
                    hosts.append(self._finish(plan, one, small, batch.outputs, batch.network_outputs))
            clock.mark("postprocess")
            hosts = [_to_host(host) for host in hosts]
            clock.mark("copy")
        timings = clock.timings()
        results = []
        for plan, host in zip(plans, hosts):
            network = {k[8:]: host.pop(k) for k in list(host) if k.startswith("network.")}
            out = self._result(host, plan.camera_out, timings)
            if network:
                out.network = self._result(network, plan.camera_net, timings)
            results.append(out)
        return results

    def _finish(
        self,
        plan: "_FramePlan",
        raw: Mapping[str, torch.Tensor],
        small: torch.Tensor,
        outputs: frozenset[str],
        network_outputs: frozenset[str],
    ) -> dict[str, torch.Tensor]:
        """One image's outputs on the device: at the network's resolution, then resized to its own."""
        net_size = plan.net_size
        same = (plan.camera_out.height, plan.camera_out.width) == net_size
        at_net = outputs | network_outputs if same else network_outputs | self._network_sources(outputs)
        net = self._postprocess(raw, at_net, small, plan.camera_net, plan.baseline, blended=same)
        if network_outputs:  # points and markers are coloured with the pixels the network saw
            net["image"] = small
        keep = outputs | network_outputs | {"image"}
        if same:
            return {k: v for k, v in net.items() if _base(k) in keep}
        result = self._upscale(net, net_size, outputs, plan.rgb, plan.bgr, plan.camera_out, plan.baseline)
        result.update({"network." + k: v for k, v in net.items() if _base(k) in network_outputs | {"image"}})
        return result

    def _postprocess(
        self,
        raw: Mapping[str, torch.Tensor],
        outputs: frozenset[str],
        small: torch.Tensor,
        camera: CameraModel,
        baseline: float,
        blended: bool,
    ) -> dict[str, torch.Tensor]:
        """The requested outputs of the first image of ``raw``, on the device, at the network's
        resolution. ``small``: the camera image at that resolution (h, w, 3) uint8 RGB, under the
        semantic colours when ``blended`` (else they are blended after resizing)."""
        result: dict[str, torch.Tensor] = {}
        ids = confidence = instances = None
        grouping = bool({"instances", "instance_color"} & outputs)
        if "semantic" in self.metadata.tasks and outputs - {"disparity"}:
            ids, confidence = self._semantic(raw, with_confidence=grouping)
        if grouping:
            instances = self.grouper(raw["instance"][:1], ids[None], confidence)[0]
        if "semantic" in outputs:
            result["semantic"] = ids
        if "semantic_color" in outputs:
            over = None if self.color_alpha >= 1.0 or not blended else small
            result["semantic_color"] = colorize_semantic(ids, over, self.color_alpha)
        if instances is not None:
            labels = instances.labels.to(torch.int16)  # < 32768 instances; read as uint16
            if "instances" in outputs:
                result["instances"] = labels
                result["instance_table"] = self._instance_table(instances, instances.pixel_counts, 1.0, 1.0)
            if "instance_color" in outputs:
                result["instance_color"] = colorize_instances(labels)
        if {"disparity", "depth", "depth_color"} & outputs:
            disparity = raw["depth"][0, 0].clamp(min=0.0)
            if "disparity" in outputs:
                result["disparity"] = disparity
            if {"depth", "depth_color"} & outputs:
                sky = None if ids is None else sky_mask(ids)
                depth = disparity_to_depth(disparity, camera.fx, baseline, sky, self.min_disparity)
                if "depth" in outputs:
                    result["depth"] = depth
                if "depth_color" in outputs:
                    result["depth_color"] = colorize_depth(depth, *self.depth_range)
        return result

    def _upscale(
        self,
        net: dict[str, torch.Tensor],
        net_size: tuple[int, int],
        outputs: frozenset[str],
        rgb: torch.Tensor,
        bgr: bool,
        camera: CameraModel,
        baseline: float,
    ) -> dict[str, torch.Tensor]:
        """Network-resolution results at the camera's resolution (``camera`` is that size).

        Ids and their colours: nearest (colour images of ids are made small and resized, which
        gives exactly the colours of the resized ids); disparity: bilinear, in pixels of the
        output; metric depth from that disparity (and the resized sky); the depth colour image:
        bilinear from the network's (a picture, not a measurement).
        """
        out_h, out_w = camera.height, camera.width
        net_h, net_w = net_size
        result: dict[str, torch.Tensor] = {}
        ids = resize.nearest(net["semantic"], out_h, out_w) if "semantic" in net else None
        if "semantic" in outputs:
            result["semantic"] = ids
        if "semantic_color" in outputs:
            color = resize.nearest(net["semantic_color"], out_h, out_w)
            if self.color_alpha < 1.0:
                color = resize.blend(color, resize.swap_channels(rgb) if bgr else rgb, self.color_alpha)
            result["semantic_color"] = color
        if "instances" in outputs:
            labels = resize.nearest(net["instances"], out_h, out_w)
            k = net["instance_table"].shape[0]
            pixels = torch.bincount(labels.reshape(-1), minlength=k + 1)[1 : k + 1]  # ids >= 0: int16 is fine
            result["instances"] = labels
            result["instance_table"] = self._rescale_table(net["instance_table"], pixels, out_w / net_w, out_h / net_h)
        if "instance_color" in outputs:
            result["instance_color"] = resize.nearest(net["instance_color"], out_h, out_w)
        if {"disparity", "depth"} & outputs:
            # In place (4x faster than a new product): resized to the camera, which is not the
            # network's size here, the map is a new tensor.
            disparity = resize.linear(net["disparity"], out_h, out_w).mul_(out_w / net_w)
            if "disparity" in outputs:
                result["disparity"] = disparity
            if "depth" in outputs:
                sky = None if ids is None else sky_mask(ids)
                result["depth"] = disparity_to_depth(disparity, camera.fx, baseline, sky, self.min_disparity)
        if "depth_color" in outputs:
            result["depth_color"] = resize.linear(net["depth_color"], out_h, out_w)
        return result

    # ------------------------------------------------------------------ batches (evaluation)
    def run_batch(
        self,
        images: np.ndarray | torch.Tensor | Sequence[np.ndarray],
        encoding: str = "rgb",
        normalized: bool = False,
        size: tuple[int, int] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Raw network outputs for a batch, on the device, at the resolution the network ran at.

        ``images``: uint8 (B, H, W, 3) (or a list of H x W x 3), or with ``normalized=True`` the
        float (B, 3, H, W) batches of ``CityscapesDataset`` (normalised RGB). The network runs at
        ``size``, by default the images' own size when the model accepts any size (evaluation
        at the dataset's size, no resampling) and its fixed size otherwise. Returns the model's
        forward dict (``semantic`` logits when the model has them, ``instance``, ``depth``) plus
        ``semantic_ids`` (B, H, W) int64 -- what ``MetricAccumulator`` consumes.
        """
        with torch.inference_mode():
            if normalized:
                x = torch.as_tensor(images).to(self.device, torch.float32)
                in_size = tuple(x.shape[-2:])
            else:
                if isinstance(images, (list, tuple)):
                    images = np.stack(images)
                rgb, bgr = self._image_tensor(images, encoding, batched=True)
                in_size = tuple(rgb.shape[1:3])
            if size is None:
                size = in_size if self.metadata.dynamic or not self.network_size else self.network_size
            if not normalized:
                x = self._preprocess(rgb, *size, bgr)[0]
            else:
                if in_size != tuple(size):
                    x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
                if self.metadata.raw_input:  # back to the camera bytes the graph normalises itself
                    x = (x / self._inv_std255 + self._mean255).round().clamp(0, 255).to(torch.uint8)
                    x = x.permute(0, 2, 3, 1).contiguous()
            out = dict(self.backend.forward(x))
            if "semantic_ids" in out:
                out["semantic_ids"] = out["semantic_ids"].long()
            elif "semantic" in out:
                out["semantic_ids"] = out["semantic"].argmax(1)
            return out

    @contextlib.contextmanager
    def _on_finish_stream(self, ready: Any) -> Iterator[None]:
        """GPU only: the finish stream, after the forward that recorded ``ready``. The batch's
        tensors were made on the forward's stream; they stay referenced by the batch until the
        host copy has synchronised this stream, so the allocator cannot hand them out early."""
        if self._finish_stream is None:
            yield
            return
        self._finish_stream.wait_event(ready)
        with torch.cuda.stream(self._finish_stream):
            yield

    @contextlib.contextmanager
    def _threads(self) -> Iterator[None]:
        """Pre- and post-processing on the CPU with ``cpu_threads`` torch threads (see __init__)."""
        previous = torch.get_num_threads()
        if self.device.type != "cpu" or self.cpu_threads is None or self.cpu_threads == previous:
            yield
            return
        torch.set_num_threads(self.cpu_threads)
        try:
            yield
        finally:
            torch.set_num_threads(previous)

    def preprocess(self, image: np.ndarray | torch.Tensor, encoding: str = "rgb") -> torch.Tensor:
        """The backend input for one image (a batch of one), as ``__call__`` prepares it."""
        rgb, bgr = self._image_tensor(image, encoding)
        h, w = self.network_size or tuple(rgb.shape[:2])
        with torch.inference_mode():
            return self._preprocess(rgb[None], h, w, bgr)[0]

    # ------------------------------------------------------------------ stages
    def _check_outputs(self, outputs: Iterable[str]) -> frozenset[str]:
        outputs = frozenset(outputs)
        unknown = outputs - OUTPUTS
        if unknown:
            raise UserError(f"unknown output(s) {sorted(unknown)}; choose from {sorted(OUTPUTS)}")
        missing = outputs - self.available
        if missing:
            raise UserError(f"this model (tasks {list(self.metadata.tasks)}) cannot produce {sorted(missing)}")
        return outputs

    def _image_tensor(
        self, image: np.ndarray | torch.Tensor, encoding: str, batched: bool = False
    ) -> tuple[torch.Tensor, bool]:
        """uint8 (..., H, W, 3) on the device and whether it is BGR; validates shape, type and
        encoding. The channels are swapped later, at the network's size (a full-size BGR
        camera image is never copied just to reorder it)."""
        if encoding not in ENCODINGS:
            raise UserError(f"unsupported encoding {encoding!r}; convert to one of {ENCODINGS} first")
        t = torch.from_numpy(np.ascontiguousarray(image)) if isinstance(image, np.ndarray) else image
        want = 4 if batched else 3
        if t.dtype != torch.uint8 or t.dim() != want or t.shape[-1] != 3 or 0 in t.shape:
            raise UserError(
                f"expected a non-empty uint8 {'B x ' if batched else ''}H x W x 3 image, "
                f"got {tuple(t.shape)} {t.dtype}"
            )
        return t.to(self.device, non_blocking=True), encoding == "bgr"

    def _preprocess(self, rgb: torch.Tensor, h: int, w: int, bgr: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, H, W, 3) uint8 camera images -> (the backend's input at h x w, the images at
        h x w as (B, h, w, 3) uint8 RGB for colour overlays)."""
        x = rgb.permute(0, 3, 1, 2)
        if tuple(rgb.shape[1:3]) != (h, w):
            # uint8 bilinear has a fast CPU kernel; on the GPU float is the supported path.
            x = x if self.device.type == "cpu" else x.float()
            x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=False)
        if bgr:
            x = x.flip(1)
        small = x if x.dtype == torch.uint8 else x.round().clamp(0, 255).to(torch.uint8)
        small = small.permute(0, 2, 3, 1)
        if self.metadata.raw_input:
            return small.contiguous(), small
        return (x.contiguous().float() - self._mean255) * self._inv_std255, small  # NCHW-contiguous

    def _semantic(
        self, raw: Mapping[str, torch.Tensor], with_confidence: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Train ids (h, w) uint8 of the first image and, if asked and logits exist, the confidence.

        The reduction runs along whichever axis is contiguous in memory. For NCHW logits on the
        CPU, ``argmax`` over channels is a slow strided reduction; the channel maximum
        (vectorised) and one compare per class give the same ids, first class on ties like
        ``argmax``, about 4x faster, and in numpy (``equal`` into one reused mask, ``putmask``)
        2x faster again than the same steps in torch, whose every call costs more than the
        work at 128x256 (docs/measurements.md). Channels-last logits (the torch backend's)
        reduce over their contiguous last axis with ``max``, as fast.
        """
        if "semantic_ids" in raw:
            return raw["semantic_ids"][0], None
        logits = raw["semantic"][0]
        classes, (h, w) = logits.shape[0], logits.shape[1:]
        if raw["semantic"].is_contiguous(memory_format=torch.channels_last) and classes > 1:
            flat, class_dim = logits.permute(1, 2, 0).reshape(h * w, classes), 1
            best, index = flat.max(1)
            best, ids = best.view(h, w), index.to(torch.uint8).view(h, w)
        else:
            flat, class_dim = logits.reshape(classes, h * w), 0
            if logits.is_cuda:
                best, ids = logits.amax(0), logits.argmax(0).to(torch.uint8)
            else:
                best, ids = (torch.from_numpy(a) for a in _channel_argmax(logits.numpy()))
        if not with_confidence:
            return ids, None
        return ids, self._thing_confidence(flat, class_dim, best, ids)

    def _thing_confidence(
        self, flat: torch.Tensor, class_dim: int, best: torch.Tensor, ids: torch.Tensor
    ) -> torch.Tensor:
        """(1, h, w) softmax maximum 1 / sum_c exp(l_c - max) at thing pixels; 1 elsewhere
        (grouping reads thing pixels only, and they are a fraction of the image).
        ``flat``: the logits as (classes, pixels) or (pixels, classes), the classes on ``class_dim``."""
        confidence = torch.ones(ids.numel(), device=ids.device)
        thing = self._is_thing[ids.view(-1).long()].nonzero().squeeze(1)
        if thing.numel():
            scores = flat.index_select(1 - class_dim, thing)
            scores -= best.view(-1)[thing].unsqueeze(class_dim)
            confidence[thing] = scores.exp_().sum(class_dim).reciprocal_()
        return confidence.view(1, *ids.shape)

    def _network_sources(self, outputs: frozenset[str]) -> frozenset[str]:
        """What to compute at the network's resolution to make ``outputs`` at another one: depth
        is recomputed from the resized disparity and sky (semantic, when the model has it)."""
        if "depth" not in outputs:
            return outputs
        return outputs | ({"disparity", "semantic"} & self.available)

    def _output_camera(
        self, camera: CameraModel | None, in_size: tuple[int, int], out_size: tuple[int, int]
    ) -> tuple[CameraModel, float]:
        """Intrinsics at the output resolution and the baseline of metric depth (module docstring).

        Without a camera, the training camera's field of view is assumed for the camera image
        (square pixels there); a network image of another aspect ratio then has non-square ones.
        """
        meta = self.metadata
        baseline = (camera.baseline if camera is not None else None) or meta.camera_baseline
        if camera is None:
            (in_h, in_w) = in_size
            camera = CameraModel.centred(meta.camera_fx * in_w / meta.camera_width, in_w, in_h)
        cam = camera.scaled(out_size[1], out_size[0])
        return replace(cam, baseline=baseline), baseline

    @staticmethod
    def _instance_table(instances: Instances, pixels: torch.Tensor, sx: float, sy: float) -> torch.Tensor:
        """(K, 5) float64: train id, pixels, centroid u, v (in pixels of an image ``sx``, ``sy``
        times the network's size), score."""
        centroids = instances.centroids.double()
        table = torch.stack(
            [instances.classes.double(), pixels.double(), centroids[:, 0], centroids[:, 1], instances.scores.double()],
            dim=1,
        )
        return Pipeline._rescale_table(table, pixels, sx, sy)

    @staticmethod
    def _rescale_table(table: torch.Tensor, pixels: torch.Tensor, sx: float, sy: float) -> torch.Tensor:
        """An instance table for an image ``sx``, ``sy`` times larger, with its ``pixels`` counts."""
        if (sx, sy) == (1.0, 1.0):
            return table
        out = table.clone()
        out[:, 1] = pixels.double()
        out[:, 2] = (table[:, 2] + 0.5) * sx - 0.5
        out[:, 3] = (table[:, 3] + 0.5) * sy - 0.5
        return out

    @staticmethod
    def _result(host: dict[str, np.ndarray], camera: CameraModel | None, timings: dict[str, float]) -> PipelineResult:
        table = host.pop("instance_table", None)
        instance_list = []
        if table is not None:
            instance_list = [
                InstanceInfo(i + 1, int(c), int(n), (float(u), float(v)), float(s))
                for i, (c, n, u, v, s) in enumerate(table.tolist())
            ]
        if "instances" in host:
            host["instances"] = host["instances"].view(np.uint16)
        return PipelineResult(**host, instance_list=instance_list, camera=camera, timings=timings)
