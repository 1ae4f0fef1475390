"""What a deployed model is: its tasks, classes, input size, normalisation and training camera.

These facts travel *inside* the model file (ONNX ``metadata_props``; for TensorRT engines, the
JSON next to the engine) so that every backend reads them back and nobody passes them by hand:
a runtime that guessed the normalisation or the training size would run a different model
than the one that was evaluated.

Each field is stored under ``mtl_perception.<field>`` as a JSON value, readable in Netron and
by ``onnx`` or ``onnxruntime`` (``InferenceSession.get_modelmeta().custom_metadata_map``).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

from mtl_perception.data.labels import CLASS_NAMES
from mtl_perception.data.normalize import MEAN_RGB, STD_RGB
from mtl_perception.data.cityscapes_camera import CITYSCAPES_BASELINE, CITYSCAPES_FX, CITYSCAPES_WIDTH
from mtl_perception.errors import UserError
from mtl_perception.model import resolve_model_config

PREFIX = "mtl_perception."
#: Bumped when a field changes meaning; a file with another version is refused, not misread.
FORMAT_VERSION = 1
PRECISIONS = ("fp32", "fp16")


@dataclass(frozen=True)
class ModelMetadata:
    """Facts about a network that a runtime needs.

    ``height`` x ``width``: the size the model was trained (and, for fixed-shape exports,
    exported) at; the pipeline resizes camera images to it. ``dynamic``: the model accepts
    other sizes. ``raw_input``: the input is uint8 RGB, **NHWC** (B, H, W, 3), as cameras give
    it, with the normalisation folded into the graph; otherwise float (B, 3, H, W) normalised
    with ``mean``/``std``. ``argmax``: the semantic output is ``semantic_ids`` (B, H, W) uint8
    train ids instead of (B, C, H, W) logits. ``precision``: the float type of the graph's
    weights (a half-precision ONNX is what TensorRT 11 builds fp16 engines from).
    ``camera_fx`` (pixels, for an image ``camera_width`` wide) and ``camera_baseline``
    (metres): the training camera, for metric depth when no camera is given;
    ``camera_source`` says where they came from (``config``, ``export`` arguments, or the
    ``cityscapes`` camera, which the real and the synthetic training data share).
    """

    tasks: tuple[str, ...]
    num_classes: int
    class_names: tuple[str, ...]
    height: int | None
    width: int | None
    dynamic: bool
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    output_stride: int
    backbone: str
    config_hash: str
    raw_input: bool = False
    argmax: bool = False
    precision: str = "fp32"
    camera_fx: float = CITYSCAPES_FX
    camera_width: int = CITYSCAPES_WIDTH
    camera_baseline: float = CITYSCAPES_BASELINE
    camera_source: str = "cityscapes"

    @property
    def output_names(self) -> tuple[str, ...]:
        """Graph output names, in canonical task order."""
        return tuple("semantic_ids" if t == "semantic" and self.argmax else t for t in self.tasks)

    def to_props(self) -> dict[str, str]:
        """ONNX ``metadata_props`` (string to string)."""
        props = {PREFIX + k: json.dumps(v) for k, v in asdict(self).items()}
        props[PREFIX + "format_version"] = json.dumps(FORMAT_VERSION)
        return props

    @classmethod
    def from_props(cls, props: Mapping[str, str], source: str) -> "ModelMetadata":
        """Read back :meth:`to_props`; ``UserError`` naming ``source`` when facts are missing."""
        version = props.get(PREFIX + "format_version")
        if version is None:
            raise UserError(
                f"{source} carries no mtl_perception metadata (task list, input size, normalisation): "
                "export it with `mtl-perception export`"
            )
        if _json_value(version, PREFIX + "format_version", source) != FORMAT_VERSION:
            raise UserError(
                f"{source} has metadata format {version}, this mtl_perception reads format "
                f"{FORMAT_VERSION}: re-export it"
            )
        values: dict[str, Any] = {}
        for f in fields(cls):
            key = PREFIX + f.name
            if key not in props:
                raise UserError(f"{source}: metadata lacks {key!r}; re-export it with `mtl-perception export`")
            value = _json_value(props[key], key, source)
            values[f.name] = tuple(value) if isinstance(value, list) else value
        try:
            check_camera(values["camera_fx"], values["camera_baseline"])
        except UserError as exc:
            raise UserError(f"{source}: metadata {exc}; re-export it with a valid --fx/--baseline") from None
        return cls(**values)

    @classmethod
    def from_config(
        cls,
        config: Mapping[str, Any],
        *,
        height: int | None = None,
        width: int | None = None,
        dynamic: bool = True,
        raw_input: bool = False,
        argmax: bool = False,
        precision: str = "fp32",
        camera_fx: float | None = None,
        camera_baseline: float | None = None,
    ) -> "ModelMetadata":
        """Facts of a model trained with ``config`` (a checkpoint's training config).

        Size defaults to ``data.height`` x ``data.width``. The training camera comes from the
        arguments (``camera_fx`` in pixels at the export ``width``), else from
        ``data.camera: {fx, baseline}`` (fx in pixels at ``data.width``), else it is the
        Cityscapes camera, which the real and the synthetic data share.
        """
        from mtl_perception.config import config_hash

        model = resolve_model_config(config.get("model"))
        data = config.get("data") or {}
        height = height or data.get("height")
        width = width or data.get("width")
        camera = data.get("camera") or {}
        if camera_fx is not None:
            if not width:
                raise UserError("the training camera's fx is given at the export width: pass --width too")
            fx, fx_width, source = float(camera_fx), int(width), "export"
        elif camera.get("fx") is not None and data.get("width"):
            fx, fx_width, source = float(camera["fx"]), int(data["width"]), "config"
        else:
            fx, fx_width, source = CITYSCAPES_FX, CITYSCAPES_WIDTH, "cityscapes"
        if camera_baseline is None:
            camera_baseline = float(camera.get("baseline", CITYSCAPES_BASELINE))
        check_camera(fx, camera_baseline)
        if precision not in PRECISIONS:
            raise UserError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        num_classes = int(model["num_classes"])
        if argmax and num_classes > 255:
            raise UserError(f"--argmax stores class ids as uint8; {num_classes} classes do not fit")
        return cls(
            tasks=tuple(model["tasks"]),
            num_classes=num_classes,
            class_names=CLASS_NAMES if num_classes == len(CLASS_NAMES) else tuple(str(i) for i in range(num_classes)),
            height=int(height) if height else None,
            width=int(width) if width else None,
            dynamic=dynamic,
            mean=tuple(float(v) for v in MEAN_RGB),
            std=tuple(float(v) for v in STD_RGB),
            output_stride=int(model["output_stride"]),
            backbone=str(model["backbone"]),
            config_hash=config_hash(dict(config)),
            raw_input=raw_input,
            argmax=argmax,
            precision=precision,
            camera_fx=fx,
            camera_width=fx_width,
            camera_baseline=float(camera_baseline),
            camera_source=source,
        )


def _json_value(text: str, key: str, source: str) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        raise UserError(f"{source}: metadata {key!r} is not valid JSON ({text[:40]!r}); re-export the model") from None


def check_camera(fx: Any, baseline: Any) -> None:
    """``UserError`` unless the training camera's focal length (px) and baseline (m) are finite
    and positive: with any other value every metric depth (Z = fx * B / d) is wrong or infinite."""
    for name, value, unit in (("training camera fx (--fx)", fx, "px"), ("training camera baseline (--baseline)", baseline, "m")):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise UserError(f"{name} must be a finite positive number ({unit}), got {value!r}")


def read_onnx_metadata(path: str) -> ModelMetadata:
    """Metadata of an ONNX file (the TensorRT build path, which has no onnxruntime session)."""
    try:
        import onnx
    except ImportError:
        raise UserError("reading ONNX metadata needs the onnx package: pip install onnx") from None
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as exc:  # protobuf DecodeError, OSError: all mean "not a readable ONNX file"
        raise UserError(f"cannot read ONNX model {path}: {exc}") from None
    return ModelMetadata.from_props({p.key: p.value for p in model.metadata_props}, str(path))
