"""Rebuild a trained network from a checkpoint file alone.

A checkpoint (written by the trainer) is a plain dict that ``torch.load(weights_only=True)``
can read: ``{"config": {..., "model": {...}}, "model": state_dict, ...}``. The architecture
comes from ``config["model"]``, so the node, the exporter and the evaluator need nothing but
the file; ``backbone_weights`` is ignored here because the ImageNet file is neither needed
(the checkpoint holds every weight) nor present on a vehicle.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import torch

from mtl_perception.errors import ConfigError, UserError
from mtl_perception.model import MultiTaskNet, build_model
from mtl_perception.model.compact import expand_state_dict

# Prefixes that DistributedDataParallel ("module.") and torch.compile ("_orig_mod.") put in
# front of every parameter name of the model they wrap.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def _strip_wrapper_prefixes(state: Mapping[str, Any]) -> dict[str, Any]:
    state = dict(state)
    stripped = True
    while stripped and state:  # wrappers nest in either order: "module._orig_mod.", "_orig_mod.module."
        stripped = False
        for prefix in _WRAPPER_PREFIXES:
            if all(k.startswith(prefix) for k in state):
                state = {k[len(prefix):]: v for k, v in state.items()}
                stripped = True
    return state


def read_checkpoint(path: str | os.PathLike) -> Mapping[str, Any]:
    """The checkpoint dict of ``path`` (``weights_only``), checked to hold a model and its config;
    ``UserError`` for a missing, unreadable or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, not a torch file, forbidden pickle: all "unreadable"
        raise UserError(f"cannot read checkpoint {path}: {exc}") from None
    if not isinstance(ckpt, Mapping) or not isinstance(ckpt.get("model"), Mapping):
        raise UserError(f"{path} is not an mtl_perception checkpoint (no 'model' state dict)")
    config = ckpt.get("config")
    if not isinstance(config, Mapping) or not isinstance(config.get("model"), Mapping):
        raise UserError(f"{path} is not an mtl_perception checkpoint (no 'config' with a 'model' section)")
    return ckpt


def model_from_checkpoint(ckpt: Mapping[str, Any], path: str | os.PathLike) -> MultiTaskNet:
    """The float32 network of a checkpoint dict from ``read_checkpoint`` (``path`` names it in errors).

    Weights stored compactly for deployment (float16, or int8 with per-channel scales, see
    ``compact.py``) come back as float32: the model is built in float32 and callers choose
    their own precision.
    """
    try:
        model = build_model({**ckpt["config"]["model"], "backbone_weights": None})
    except ConfigError as exc:
        raise ConfigError(f"checkpoint {path}: {exc}") from None
    state = expand_state_dict(_strip_wrapper_prefixes(ckpt["model"]))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise UserError(f"checkpoint {path}: weights do not match its own model config: {exc}") from None
    return model


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[MultiTaskNet, dict[str, Any]]:
    """Return ``(model.eval() on device, training config)``; ``UserError`` for a bad file."""
    ckpt = read_checkpoint(path)
    return model_from_checkpoint(ckpt, path).to(device).eval(), dict(ckpt["config"])
