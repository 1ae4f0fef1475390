"""The node's parameters: one table of name, default, description, range and allowed values.

Every parameter is declared with a ``ParameterDescriptor`` that carries its description and
its range (``IntegerRange`` / ``FloatingPointRange``: rclpy refuses out-of-range values
itself) and, for strings, the allowed values in ``additional_constraints``, which
``check`` enforces together with the rules that span two parameters. Parameters that shape
the model, the backend or the topics are read-only: changing them needs a restart, and
saying so is better than silently ignoring the new value.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Callable, Mapping

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter

from mtl_perception.errors import ConfigError
from mtl_perception.inference.factory import BACKENDS
from mtl_perception.inference.pipeline import COLOR_ALPHA, DEPTH_COLOR_RANGE_M
from mtl_perception.postprocess.grouping import METHODS as GROUPING_METHODS
from mtl_perception.ros.compat import add_parameter_callbacks
from mtl_perception.ros.qos import IMAGE_RELIABILITY, RELIABILITY

Value = bool | int | float | str


@dataclass(frozen=True)
class Spec:
    """One parameter: its default (which fixes its type), what it does and what it accepts."""

    default: Value
    description: str
    choices: tuple[str, ...] = ()
    pattern: str | None = None
    range: tuple[float, float] | None = None
    read_only: bool = False
    constraint: str = field(init=False, default="")

    def __post_init__(self) -> None:
        if self.choices:
            text = "one of: " + ", ".join(self.choices)
        elif self.pattern:
            text = f"matches {self.pattern}"
        elif self.range:
            text = f"from {self.range[0]} to {self.range[1]}"
        else:
            text = ""
        if self.read_only:
            text = (text + "; " if text else "") + "read-only (set at start-up)"
        object.__setattr__(self, "constraint", text)


SPECS: dict[str, Spec] = {
    "model_path": Spec(
        "",
        "Checkpoint (.pt), ONNX model (.onnx) or TensorRT engine; empty = the model shipped in the package.",
        read_only=True,
    ),
    "backend": Spec(
        "auto", "Inference backend; auto picks TensorRT, then onnxruntime, then torch.",
        choices=BACKENDS, read_only=True,
    ),
    "device": Spec(
        "auto", "Device: auto (CUDA when present), cpu, cuda or cuda:N.",
        pattern=r"^(auto|cpu|cuda(:\d+)?)$", read_only=True,
    ),
    "precision": Spec(
        "auto", "Arithmetic precision of the backend; auto = the model file's own (fp32 for a checkpoint).",
        choices=("auto", "fp32", "fp16"), read_only=True,
    ),
    "grouping": Spec(
        "votes", "Instance grouping: votes (vote histogram peaks, fast) or optics (scikit-learn OPTICS, slow).",
        choices=tuple(GROUPING_METHODS), read_only=True,
    ),
    "output_resolution": Spec(
        "network",
        "Resolution of every image output: network (the model's; cheap at any camera size) or input (the "
        "camera's; resized from the network's). Each image group publishes a camera_info of that resolution.",
        choices=("input", "network"),
    ),
    "cameras": Spec(
        "",
        "Comma list of camera names served by this one node and model, e.g. front,left,right,rear: each has "
        "<name>/image and <name>/camera_info in and its outputs under <name>/, and every round runs the newest "
        "frame of each camera as one batch. Empty: one camera on 'image' and 'camera_info'.",
        pattern=r"^([A-Za-z][A-Za-z0-9_]*(,[A-Za-z][A-Za-z0-9_]*)*)?$", read_only=True,
    ),
    "input_transport": Spec(
        "raw", "raw: sensor_msgs/Image on 'image'; compressed: sensor_msgs/CompressedImage on '<image>/compressed'.",
        choices=("raw", "compressed"), read_only=True,
    ),
    "image_qos_reliability": Spec(
        "auto", "Reliability of the image subscription; auto follows the camera's writers (reliable when all are).",
        choices=IMAGE_RELIABILITY, read_only=True,
    ),
    "image_qos_depth": Spec(
        5, "Keep-last depth of the image subscription (frames the reader may hold before the node takes them).",
        range=(1, 100), read_only=True,
    ),
    "output_qos_reliability": Spec(
        "reliable", "Reliability of every output publisher.", choices=RELIABILITY, read_only=True,
    ),
    "output_qos_depth": Spec(5, "Keep-last depth of every output publisher.", range=(1, 100), read_only=True),
    "use_camera_info": Spec(
        True, "Use intrinsics from 'camera_info' for depth and points; otherwise the model's training camera."
    ),
    "use_camera_info_baseline": Spec(
        False,
        "Metric depth with the stereo baseline of camera_info's P[3] instead of the model's training baseline "
        "(only right for a camera of the rig the model was trained on: the network's disparity refers to that rig).",
    ),
    "semantic_color_alpha": Spec(
        COLOR_ALPHA, "Opacity of the class colours in semantic/color over the camera image (1 = colours only).",
        range=(0.0, 1.0),
    ),
    "depth_color_min_m": Spec(DEPTH_COLOR_RANGE_M[0], "Depth (m) mapped to the warm end of depth/color.", range=(0.1, 1000.0)),
    "depth_color_max_m": Spec(DEPTH_COLOR_RANGE_M[1], "Depth (m) mapped to the cold end of depth/color.", range=(0.1, 1000.0)),
    "points_stride": Spec(2, "Publish every n-th pixel (in x and in y) in 'points'.", range=(1, 64)),
    "points_max_depth_m": Spec(80.0, "Points farther than this (m) are left out of 'points'.", range=(1.0, 1000.0)),
    "max_input_pixels": Spec(
        4096 * 4096,
        "Frames with more pixels than this are refused (counted in /diagnostics as oversized): one huge "
        "frame would otherwise grow the process by its buffers for good (see retain_freed_memory).",
        range=(1, 2**28),
    ),
    "retain_freed_memory": Spec(
        True,
        "Keep freed heap memory in the process (glibc mallopt): no page faults per frame, but the process "
        "keeps its peak memory. false = give it back to the system (for memory-tight machines).",
        read_only=True,
    ),
}


def descriptor(name: str, spec: Spec) -> ParameterDescriptor:
    """The ParameterDescriptor of one parameter: description, constraints, range, read-only."""
    desc = ParameterDescriptor(
        name=name,
        description=spec.description,
        additional_constraints=spec.constraint,
        read_only=spec.read_only,
    )
    if spec.range is not None:
        low, high = spec.range
        if isinstance(spec.default, int) and not isinstance(spec.default, bool):
            desc.integer_range = [IntegerRange(from_value=int(low), to_value=int(high), step=1)]
        else:
            desc.floating_point_range = [FloatingPointRange(from_value=float(low), to_value=float(high), step=0.0)]
    return desc


def check_each(changes: Mapping[str, Value]) -> str | None:
    """Why one of ``changes`` is not an allowed string value, or None."""
    for name, value in changes.items():
        spec = SPECS.get(name)
        if spec is None:
            continue
        if spec.choices and value not in spec.choices:
            return f"{name} must be one of {', '.join(spec.choices)}, got '{value}'"
        if spec.pattern and not re.match(spec.pattern, str(value)):
            return f"{name} must match {spec.pattern}, got '{value}'"
    return None


def check(changes: Mapping[str, Value], current: Mapping[str, Value]) -> str | None:
    """Why ``changes`` cannot be applied on top of ``current``, or None when they can.

    Types, ranges and read-only flags are rclpy's job (from the descriptors); this checks
    allowed strings, patterns and the rules between parameters.
    """
    reason = check_each(changes)
    if reason is not None:
        return reason
    merged = {**current, **changes}
    if merged["depth_color_min_m"] >= merged["depth_color_max_m"]:
        return (
            f"depth_color_min_m ({merged['depth_color_min_m']}) must be smaller than "
            f"depth_color_max_m ({merged['depth_color_max_m']})"
        )
    return None


def declare(node: Node, on_change: Callable[[dict[str, Value]], None]) -> dict[str, Value]:
    """Declare every parameter on ``node`` with validation; return the start-up values.

    The callbacks are registered first so that values from the params file go through the
    same checks as later ``ros2 param set`` calls; ``on_change`` receives the changes accepted
    after start-up (on every distribution: ``compat.add_parameter_callbacks``). A bad start-up value raises rclpy's
    ``InvalidParameterValueException`` (or ``InvalidParameterTypeException``), a broken rule
    between two parameters ``ConfigError``.
    """
    values: dict[str, Value] = {name: spec.default for name, spec in SPECS.items()}
    declared = False

    def validate(params: list[Parameter]) -> SetParametersResult:
        changes = {p.name: p.value for p in params}
        # rclpy declares one parameter at a time: rules between parameters are checked once
        # all of them hold their start-up values, not against the defaults of the others.
        reason = check(changes, values) if declared else check_each(changes)
        return SetParametersResult(successful=reason is None, reason=reason or "")

    def apply(params: list[Parameter]) -> None:
        if not declared:  # start-up values are read below, once each is declared
            return
        changes = {p.name: p.value for p in params if p.name in SPECS}
        values.update(changes)
        on_change(changes)

    add_parameter_callbacks(node, validate, apply)
    for name, spec in SPECS.items():
        node.declare_parameter(name, spec.default, descriptor(name, spec))
        values[name] = node.get_parameter(name).value
    reason = check({}, values)
    if reason is not None:
        raise ConfigError(f"parameter {reason}")
    declared = True
    return dict(values)


def unknown_names(given: list[str], declared: Callable[[str], bool]) -> list[str]:
    """One warning per given parameter this node does not declare (a typo in a params file
    or a ``-p`` is otherwise ignored without a word), with the nearest declared name."""
    lines = []
    for name in sorted(given):
        if declared(name) or name.startswith("qos_overrides."):
            continue
        near = difflib.get_close_matches(name, list(SPECS), n=1)
        hint = f"; did you mean '{near[0]}'?" if near else ""
        lines.append(f"parameter '{name}' is not a parameter of this node and is ignored{hint}")
    return lines
