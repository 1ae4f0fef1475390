"""The multi-task network: dilated ResNet backbone, DeepLabV3 ASPP, one decoder per task.

``build_model(cfg)`` turns the ``model:`` section of a training config into a ``MultiTaskNet``.
Every key is validated here, once, so a typo in a config fails at start-up with the key's name
instead of deep inside a training run. Keys (all optional, defaults = the paper's set-up)::

    backbone: resnet101        # resnet18 | resnet34 | resnet50 | resnet101
    output_stride: 8           # 8 (dilate layer3+layer4) | 16 (dilate layer4)
    tasks: [semantic, instance, depth]   # any non-empty subset
    num_classes: 19
    aspp_channels: 256
    decoder_channels: 256
    decoder: paper             # paper | skip | skip_shared (stride-8 and stride-4 skips, see decoders.py)
    backbone_weights: null     # path to a torchvision ResNet state dict (ImageNet weights)
    disparity_bias: 0.0        # initial disparity prediction in pixels at the network's width
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Mapping

import torch

from mtl_perception.data.labels import NUM_CLASSES
from mtl_perception.errors import ConfigError, UserError
from mtl_perception.model.aspp import ATROUS_RATES, ASPP
from mtl_perception.model.decoders import SkipDecoder, SkipFusion, TaskDecoder
from mtl_perception.model.network import MultiTaskNet
from mtl_perception.model.resnet import RESNET_SPECS, ResNet, build_resnet
from mtl_perception.model.tasks import TASKS, output_channels

__all__ = ["DECODERS", "MODEL_DEFAULTS", "MultiTaskNet", "build_model", "load_backbone_weights", "resolve_model_config"]

#: Decoder kinds (``model.decoder``): the paper's, per-task skip decoders, one shared skip fusion.
DECODERS = ("paper", "skip", "skip_shared")

MODEL_DEFAULTS: dict[str, Any] = {
    "backbone": "resnet101",
    "output_stride": 8,
    "tasks": list(TASKS),
    "num_classes": NUM_CLASSES,
    "aspp_channels": 256,
    "decoder_channels": 256,
    "decoder": "paper",
    "backbone_weights": None,
    "disparity_bias": 0.0,
}


def _positive_int(cfg: Mapping[str, Any], key: str) -> None:
    value = cfg[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"model.{key} must be a positive integer, got {value!r}")


def resolve_model_config(cfg: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate ``cfg`` and fill in defaults; raise ``ConfigError`` naming the bad key."""
    if cfg is None:
        cfg = {}
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"model section must be a mapping, got {type(cfg).__name__}")
    unknown = sorted(set(cfg) - set(MODEL_DEFAULTS))
    if unknown:
        raise ConfigError(f"model: unknown key(s) {unknown}; known keys: {sorted(MODEL_DEFAULTS)}")
    out = {**MODEL_DEFAULTS, **cfg}

    if out["backbone"] not in RESNET_SPECS:
        raise ConfigError(f"model.backbone: unknown backbone {out['backbone']!r}; choose one of {sorted(RESNET_SPECS)}")
    if isinstance(out["output_stride"], bool) or out["output_stride"] not in ATROUS_RATES:
        raise ConfigError(f"model.output_stride must be one of {sorted(ATROUS_RATES)}, got {out['output_stride']!r}")

    tasks = out["tasks"]
    if not isinstance(tasks, (list, tuple)) or not tasks:
        raise ConfigError(f"model.tasks must be a non-empty list drawn from {list(TASKS)}, got {tasks!r}")
    for task in tasks:
        if task not in TASKS:
            raise ConfigError(f"model.tasks: unknown task {task!r}; choose from {list(TASKS)}")
    if len(set(tasks)) != len(tasks):
        raise ConfigError(f"model.tasks lists a task twice: {list(tasks)}")
    out["tasks"] = [t for t in TASKS if t in tasks]

    if out["decoder"] not in DECODERS:
        raise ConfigError(f"model.decoder must be one of {list(DECODERS)}, got {out['decoder']!r}")
    for key in ("num_classes", "aspp_channels", "decoder_channels"):
        _positive_int(out, key)
    weights = out["backbone_weights"]
    if weights is not None and not isinstance(weights, (str, os.PathLike)):
        raise ConfigError(f"model.backbone_weights must be a file path or null, got {weights!r}")
    bias = out["disparity_bias"]
    if isinstance(bias, bool) or not isinstance(bias, (int, float)) or not math.isfinite(bias):
        raise ConfigError(f"model.disparity_bias must be a finite number of pixels, got {bias!r}")
    out["disparity_bias"] = float(bias)
    return out


def load_backbone_weights(backbone: ResNet, path: str | os.PathLike, name: str = "backbone") -> None:
    """Load a torchvision ResNet state dict (its ``fc.*`` classifier dropped) with ``strict=True``.

    Strict on purpose: a silently half-loaded backbone trains, but to a worse model, and nobody
    notices. Raises ``UserError`` naming the file for a missing, unreadable or mismatched file.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"model.backbone_weights: file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many types for a bad file; all mean the same
        raise UserError(f"model.backbone_weights: cannot read {path} as torch weights: {exc}") from None
    if not isinstance(state, Mapping):
        raise UserError(f"model.backbone_weights: {path} holds a {type(state).__name__}, not a state dict")
    if "model" in state and "config" in state:
        raise UserError(
            f"model.backbone_weights: {path} is an mtl_perception checkpoint; expected a torchvision {name} state dict"
        )
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    expected = set(backbone.state_dict())
    missing = sorted(expected - set(state))
    unexpected = sorted(set(state) - expected)
    if missing or unexpected:
        raise UserError(
            f"model.backbone_weights: {path} does not match a torchvision {name}: "
            f"{len(missing)} missing key(s) {missing[:4]}, {len(unexpected)} unexpected key(s) {unexpected[:4]}"
        )
    try:
        backbone.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # same names, other shapes: e.g. resnet34 weights for resnet18
        raise UserError(f"model.backbone_weights: {path} does not fit {name}: {exc}") from None


def build_model(cfg_model: Mapping[str, Any] | None) -> MultiTaskNet:
    """Build the network described by a ``model:`` config section (see the module docstring)."""
    cfg = resolve_model_config(cfg_model)
    backbone = build_resnet(cfg["backbone"], cfg["output_stride"])
    if cfg["backbone_weights"] is not None:
        load_backbone_weights(backbone, cfg["backbone_weights"], cfg["backbone"])
    aspp = ASPP(backbone.out_channels, ATROUS_RATES[cfg["output_stride"]], cfg["aspp_channels"])
    channels, kind = cfg["decoder_channels"], cfg["decoder"]
    fusion = SkipFusion(cfg["aspp_channels"], backbone.skip_channels, channels) if kind == "skip_shared" else None

    def decoder(task: str) -> torch.nn.Module:
        out, bias = output_channels(task, cfg["num_classes"]), cfg["disparity_bias"] if task == "depth" else 0.0
        if kind == "skip":
            return SkipDecoder(cfg["aspp_channels"], backbone.skip_channels, channels, out, bias)
        if kind == "skip_shared":  # a small per-task head at stride 4 after the shared fusion
            return TaskDecoder(channels, max(16, channels // 4), out, bias)
        return TaskDecoder(cfg["aspp_channels"], channels, out, bias)

    return MultiTaskNet(backbone, aspp, {task: decoder(task) for task in cfg["tasks"]}, fusion)
